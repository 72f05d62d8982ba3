//! Live video-to-video: `POST /live-video-to-video`, usage accounting and `POST /payment`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway_core::capabilities::Capability;
use gateway_core::jobs::{self, LiveVideoToVideoRequest};
use gateway_core::lp_rpc::PaymentResult;
use gateway_core::trickle::{channel_url, ChannelNames, MIME_JSON, MIME_MPEGTS};
use prost::Message;
use tokio_util::sync::CancellationToken;

use super::{http_error, CapabilityOffer, Inner, LocalOrchestrator, PaymentRoute, Session};
use crate::tickets::fixed_bytes;
use crate::workers;

/// `POST /live-video-to-video`, in go-livepeer's order of checks.
pub(super) async fn start_lv2v(
    State(orch): State<LocalOrchestrator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inner = &orch.inner;
    let req: LiveVideoToVideoRequest = if body.is_empty() {
        LiveVideoToVideoRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return http_error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
        }
    };
    let model = if req.model_id.is_empty() { "noop".to_owned() } else { req.model_id.clone() };
    let Some((offer_index, offer)) = inner.offer_for(Capability::LiveVideoToVideo, &model) else {
        return http_error(StatusCode::SERVICE_UNAVAILABLE, "insufficient capacity");
    };
    let offer = offer.clone();
    if !inner.reserve(offer_index) {
        return http_error(StatusCode::SERVICE_UNAVAILABLE, "insufficient capacity");
    }
    let mid = hex::encode(rand::random::<[u8; 4]>());
    // go-livepeer's order: decode the payment (402), check the credentials (403), process the
    // payment (400), then the balance (400).
    let paid = Inner::decode_payment(&headers).and_then(|payment| {
        let sender = fixed_bytes(&payment.sender);
        inner.check_segment(&headers, &sender)?;
        inner.process_payment(&payment, &mid, PaymentRoute::Lv2vStart)
    });
    let sender = match paid {
        Ok(s) => s,
        Err(r) => {
            inner.release(offer_index);
            return r.into_response();
        }
    };
    let min_credit = (inner.config.ticket_ev_wei as f64).min(1.0);
    if !inner.config.offchain && offer.price_per_unit > 0 && orch.balance(&sender, &mid) < min_credit {
        inner.release(offer_index);
        return http_error(StatusCode::BAD_REQUEST, "Insufficient balance");
    }
    let channels = ChannelNames::for_stream(&mid);
    inner.trickle.create_channel(&channels.input, MIME_MPEGTS);
    inner.trickle.create_channel(&channels.output, MIME_MPEGTS);
    inner.trickle.create_channel(&channels.control, MIME_JSON);
    inner.trickle.create_channel(&channels.events, MIME_JSON);
    let cancel = CancellationToken::new();
    inner.sessions.lock().unwrap_or_else(|e| e.into_inner()).insert(
        mid.clone(),
        Session { channels: channels.clone(), cancel: cancel.clone(), offer_index, byoc: false },
    );
    inner.counters.lv2v_sessions_started.fetch_add(1, Ordering::Relaxed);
    let activity = Arc::new(AtomicU64::new(0));
    tokio::spawn(workers::run_lv2v_passthrough(
        inner.trickle.clone(),
        channels.clone(),
        workers::WorkerOptions { event_interval: inner.config.event_interval, pipeline: model.clone() },
        activity.clone(),
        cancel.clone(),
    ));
    tokio::spawn(lv2v_accounting(orch.clone(), mid.clone(), sender, offer, activity, cancel));
    let origin = &inner.service_uri;
    let resp = jobs::LiveVideoToVideoResponse {
        publish_url: channel_url(origin, &channels.input),
        subscribe_url: channel_url(origin, &channels.output),
        control_url: channel_url(origin, &channels.control),
        events_url: channel_url(origin, &channels.events),
        manifest_id: mid,
        request_id: req.gateway_request_id,
    };
    axum::Json(resp).into_response()
}

/// Debits LV2V usage while input arrives; closes the session when the balance cannot cover it.
pub(super) async fn lv2v_accounting(
    orch: LocalOrchestrator,
    mid: String,
    sender: [u8; 20],
    offer: CapabilityOffer,
    activity: Arc<AtomicU64>,
    cancel: CancellationToken,
) {
    let inner = &orch.inner;
    if inner.config.offchain || offer.price_per_unit == 0 {
        cancel.cancelled().await;
        orch.inner.stop_session(&mid);
        return;
    }
    let interval = inner.config.lv2v_accounting_interval;
    let wei_per_pixel = offer.price_per_unit as f64 / offer.pixels_per_unit.max(1) as f64;
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        let now_seen = activity.load(Ordering::Relaxed);
        if now_seen == seen {
            continue; // no media, no accounting (go-livepeer is driven by input segments)
        }
        seen = now_seen;
        let fee = interval.as_secs_f64()
            * inner.config.usage_time_scale
            * jobs::LV2V_PIXELS_PER_SECOND as f64
            * wei_per_pixel;
        if orch.balance(&sender, &mid) < fee {
            tracing::info!(mid, "closing LV2V session: insufficient balance");
            inner.counters.stopped_for_payment.fetch_add(1, Ordering::Relaxed);
            break;
        }
        inner.debit(sender, &mid, fee);
    }
    inner.stop_session(&mid);
}

/// `POST /payment`: credit an LV2V session, answer fresh orchestrator info.
pub(super) async fn lv2v_payment(State(orch): State<LocalOrchestrator>, headers: HeaderMap) -> Response {
    let inner = &orch.inner;
    // go-livepeer's order: decode the payment (402), check the credentials (403), fresh info for
    // the payment's sender, process the payment (400).
    let answered = Inner::decode_payment(&headers).and_then(|payment| {
        let sender = fixed_bytes(&payment.sender);
        let seg = inner.check_segment(&headers, &sender)?;
        let info = inner.orchestrator_info(&sender, seg.capabilities.as_ref(), seg.auth_token.clone());
        inner.process_payment(
            &payment,
            &String::from_utf8_lossy(&seg.manifest_id),
            PaymentRoute::Lv2vPayment,
        )?;
        Ok(info)
    });
    let info = match answered {
        Ok(info) => info,
        Err(r) => return r.into_response(),
    };
    let body = PaymentResult { info: Some(info) }.encode_to_vec();
    ([("content-type", "application/octet-stream")], body).into_response()
}
