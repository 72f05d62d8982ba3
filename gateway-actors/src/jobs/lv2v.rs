//! Live video-to-video: `POST /live-video-to-video`, then media in and out over trickle, a
//! control channel, an events channel and payments every few seconds.

use gateway_core::capabilities::{Capability, CapabilityQuery};
use gateway_core::error::TrickleError;
use gateway_core::jobs::{self, LiveVideoToVideoRequest, LiveVideoToVideoResponse};
use gateway_core::rejection::JobError;
use gateway_core::rejection::RejectionReason;
use gateway_core::trickle::SeqSpec;
use serde_json::Value;

use super::failover::Failover;
use super::{send, Attempt, JobPayments};
use crate::channels::{ControlWriter, JsonReader};
use crate::gateway::{Gateway, GatewayError};
use crate::payments::{PaymentKind, PaymentStats, PaymentStop, PaymentTarget};
use crate::trickle::{
    PublisherConfig, SegmentGetClient, SubscriberConfig, TricklePublisher, TrickleSubscriber,
};

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct Lv2vRequest {
    /// Pipeline model (`noop` when empty).
    pub model_id: String,
    /// Initial pipeline parameters.
    pub params: Option<Value>,
    /// Caller's stream id (logging).
    pub stream_id: Option<String>,
    /// Caller's request id (logging).
    pub request_id: Option<String>,
    /// Highest acceptable price, wei per pixel.
    pub max_price_wei_per_unit: Option<f64>,
    /// Only orchestrators whose URL contains this, here and on every swap (go's `orchestrator`
    /// query key); `None` or empty: any.
    pub orchestrator: Option<String>,
}

/// A running LV2V job.
pub struct Lv2vJob {
    /// The orchestrator running it.
    pub orchestrator: String,
    /// Its channels and manifest id.
    pub session: LiveVideoToVideoResponse,
    /// The selected candidate's address (what a new selection excludes).
    pub(crate) address: String,
    pub(crate) http: reqwest::Client,
    reader: SegmentGetClient,
    payments: JobPayments,
}

impl std::fmt::Debug for Lv2vJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lv2vJob")
            .field("orchestrator", &self.orchestrator)
            .field("manifest_id", &self.session.manifest_id)
            .finish()
    }
}

impl Gateway {
    /// Selects an orchestrator for `live-video-to-video/{model}`, pays, and starts the job,
    /// failing over to the next candidate when a start fails.
    /// Ends with [`GatewayError::Stopped`] when the gateway shuts down meanwhile.
    pub async fn start_lv2v(&self, request: Lv2vRequest) -> Result<Lv2vJob, GatewayError> {
        self.until_shutdown(self.start_lv2v_excluding(request, Vec::new())).await
    }

    /// [`Gateway::start_lv2v`] on any orchestrator but those in `exclude`.
    pub(crate) async fn start_lv2v_excluding(
        &self,
        request: Lv2vRequest,
        exclude: Vec<String>,
    ) -> Result<Lv2vJob, GatewayError> {
        let model = if request.model_id.is_empty() { "noop".to_owned() } else { request.model_id.clone() };
        let queries = vec![CapabilityQuery::new(Capability::LiveVideoToVideo, model.clone())
            .map_err(|e| JobError::InvalidRequest(e.to_string()))?];
        let identity = self.identity().await?;
        let mut selection =
            self.select_as(&queries, identity.clone(), request.max_price_wei_per_unit, exclude).await?;
        if let Some(wanted) = request.orchestrator.as_deref().filter(|w| !w.is_empty()) {
            selection = selection.only_matching(wanted)?;
        }
        let failover = Failover {
            selection: &selection,
            queries: &queries,
            identity,
            kind: PaymentKind::Lv2v,
            manifest_id: None,
        };
        let (model, request) = (&model, &request);
        let job = self
            .first_success(failover, |candidate, attempt, creds| {
                let address = candidate.address.clone();
                async move {
                let Attempt { origin, http, actor_http, reader, mut session } = attempt;
                let body = LiveVideoToVideoRequest {
                    model_id: model.clone(),
                    params: request.params.clone(),
                    gateway_request_id: request.request_id.clone(),
                    stream_id: request.stream_id.clone(),
                };
                let req = http
                    .post(format!("{origin}{}", jobs::LIVE_VIDEO_TO_VIDEO_PATH))
                    .header(jobs::HEADER_PAYMENT, &creds.payment)
                    .header(jobs::HEADER_SEGMENT, &creds.segment)
                    .header(reqwest::header::AUTHORIZATION, jobs::AI_WORKER_AUTHORIZATION)
                    .json(&body);
                let answer = send(req, jobs::LIVE_VIDEO_TO_VIDEO_PATH).await?;
                if answer.status != 200 {
                    return Err(answer.rejection(jobs::LIVE_VIDEO_TO_VIDEO_PATH));
                }
                let started: LiveVideoToVideoResponse =
                    serde_json::from_slice(&answer.body).map_err(|e| RejectionReason::InvalidAnswer {
                        endpoint: jobs::LIVE_VIDEO_TO_VIDEO_PATH.to_owned(),
                        reason: format!("invalid start answer: {e}"),
                    })?;
                let started = started.absolutize(&origin);
                session.set_manifest_id(started.manifest_id.clone());
                let payments = self.start_payments(
                    session,
                    PaymentTarget::Lv2v { orchestrator: origin.clone() },
                    actor_http,
                    self.inner.config.lv2v_payment_interval,
                );
                tracing::info!(orchestrator = %origin, manifest_id = %started.manifest_id, "LV2V job started");
                Ok(Lv2vJob { orchestrator: origin, session: started, address, http, reader, payments })
            }
            })
            .await?;
        Ok(job)
    }
}

impl Lv2vJob {
    /// A publisher of the job's input channel (MPEG-TS segments).
    pub async fn publisher(&self) -> TricklePublisher {
        TricklePublisher::start(self.http.clone(), &self.session.publish_url, PublisherConfig::default())
            .await
    }

    /// A subscriber of the job's output channel.
    pub fn output(&self, start: SeqSpec) -> TrickleSubscriber {
        TrickleSubscriber::new(
            self.reader.clone(),
            &self.session.subscribe_url,
            SubscriberConfig { start, ..Default::default() },
        )
    }

    /// The output channel read once and fanned out to any number of consumers.
    pub fn output_reader(&self, start: SeqSpec) -> crate::reader::SegmentReader {
        crate::reader::SegmentReader::start(self.output(start), crate::reader::DEFAULT_FANOUT_CAPACITY)
    }

    /// The job's output video as access units (or, with
    /// [`VideoSubscriber::next_frame`](crate::output_video::VideoSubscriber::next_frame),
    /// decoded frames), demuxed from the output channel's MPEG-TS segments as they arrive.
    pub fn output_video(&self, start: SeqSpec) -> crate::output_video::VideoSubscriber {
        crate::output_video::VideoSubscriber::new(self.output(start))
    }

    /// The job's output video and audio, as units or (with
    /// [`VideoSubscriber::next_media`](crate::output_video::VideoSubscriber::next_media))
    /// decoded frames and samples.
    pub fn output_media(&self, start: SeqSpec) -> crate::output_video::VideoSubscriber {
        crate::output_video::VideoSubscriber::with_audio(self.output(start))
    }

    /// A reader of the job's events.
    pub fn events(&self) -> JsonReader {
        JsonReader::new(self.reader.clone(), &self.session.events_url, SeqSpec::Current)
    }

    /// A writer of the job's control channel, with the keepalive running.
    pub async fn control(&self) -> ControlWriter {
        ControlWriter::connect(
            self.http.clone(),
            &self.session.control_url,
            ControlWriter::default_keepalive(),
        )
        .await
    }

    /// Payments so far.
    pub fn payment_stats(&self) -> PaymentStats {
        self.payments.stats()
    }

    /// Resolves when recurring payments stop for good, with why (at once if the job does not
    /// pay). A stop other than [`PaymentStop::JobEnded`] means the orchestrator will soon end
    /// the stream for lack of payment.
    pub async fn payments_stopped(&self) -> PaymentStop {
        self.payments.stopped().await
    }

    /// Stops paying and ends the session (deleting the input channel makes the orchestrator
    /// close all four channels). Never fails; problems are logged.
    pub async fn stop(self) -> Result<(), TrickleError> {
        self.payments.stop().await;
        self.end_session().await;
        Ok(())
    }

    /// Stops paying now (a swap: the next orchestrator's payments start at once).
    pub(crate) async fn stop_payments(&self) {
        self.payments.stop().await;
    }

    /// Deletes the input channel, which makes the orchestrator close the session.
    pub(crate) async fn end_session(&self) {
        let resp = tokio::time::timeout(
            crate::http::JSON_CALL_TIMEOUT,
            self.http.delete(&self.session.publish_url).send(),
        )
        .await;
        if !matches!(resp, Ok(Ok(ref r)) if r.status().is_success() || r.status().as_u16() == 400) {
            tracing::debug!("LV2V stop: deleting the input channel did not succeed");
        }
    }
}
