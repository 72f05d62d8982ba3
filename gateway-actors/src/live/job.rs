//! The job a live stream runs on its current orchestrator, LV2V or BYOC, behind the few
//! operations the swap driver needs: start it (on any orchestrator but the failed ones), read
//! its channels and payments, and stop it with a reason.

use gateway_core::trickle::MIME_MPEGTS;

use crate::gateway::{Gateway, GatewayError};
use crate::jobs::byoc::{ByocJob, ByocJobRequest};
use crate::jobs::lv2v::{Lv2vJob, Lv2vRequest};
use crate::payments::{PaymentStats, PaymentStop};
use crate::trickle::{PublisherConfig, StreamChannels, TricklePublisher};

/// What a live stream runs.
#[derive(Debug, Clone)]
pub enum LiveJobRequest {
    /// Live video-to-video.
    Lv2v(Lv2vRequest),
    /// A BYOC stream.
    Byoc(ByocJobRequest),
}

/// The job running now.
pub(crate) enum RunningJob {
    Lv2v(Lv2vJob),
    Byoc(ByocJob),
}

impl Gateway {
    /// Starts `request` on an orchestrator not in `exclude` (with the usual failover).
    pub(crate) async fn start_running(
        &self,
        request: &LiveJobRequest,
        exclude: Vec<String>,
    ) -> Result<RunningJob, GatewayError> {
        let work = async {
            Ok(match request {
                LiveJobRequest::Lv2v(r) => {
                    RunningJob::Lv2v(self.start_lv2v_excluding(r.clone(), exclude).await?)
                }
                LiveJobRequest::Byoc(r) => {
                    RunningJob::Byoc(self.start_byoc_job_excluding(r.clone(), exclude).await?)
                }
            })
        };
        self.until_shutdown(work).await
    }
}

impl RunningJob {
    /// The selected candidate's address (excluded from the next selection after a failure).
    pub(crate) fn address(&self) -> &str {
        match self {
            RunningJob::Lv2v(j) => &j.address,
            RunningJob::Byoc(j) => &j.address,
        }
    }

    /// The job's id: the LV2V manifest id or the BYOC stream id.
    pub(crate) fn id(&self) -> &str {
        match self {
            RunningJob::Lv2v(j) => &j.session.manifest_id,
            RunningJob::Byoc(j) => &j.stream_id,
        }
    }

    /// The orchestrator's origin (`https://host:port`).
    pub(crate) fn orchestrator(&self) -> &str {
        match self {
            RunningJob::Lv2v(j) => &j.orchestrator,
            RunningJob::Byoc(j) => &j.orchestrator,
        }
    }

    /// Its channels.
    pub(crate) fn channels(&self) -> StreamChannels {
        match self {
            RunningJob::Lv2v(j) => StreamChannels {
                publish: Some(j.session.publish_url.clone()),
                output: Some(j.session.subscribe_url.clone()),
                control: Some(j.session.control_url.clone()),
                events: Some(j.session.events_url.clone()),
                data: None,
            },
            RunningJob::Byoc(j) => StreamChannels {
                publish: j.urls.publish_url.clone(),
                output: j.urls.subscribe_url.clone(),
                control: j.urls.control_url.clone(),
                events: j.urls.events_url.clone(),
                data: j.urls.data_url.clone(),
            },
        }
    }

    /// The client for its media and control channels.
    pub(crate) fn http(&self) -> reqwest::Client {
        match self {
            RunningJob::Lv2v(j) => j.http.clone(),
            RunningJob::Byoc(j) => j.http.clone(),
        }
    }

    /// A publisher of its input channel carrying `mime` (LV2V takes MPEG-TS only).
    pub(crate) async fn publisher(&self, mime: &str) -> Option<TricklePublisher> {
        let url = self.channels().publish?;
        let mime = match self {
            RunningJob::Lv2v(_) => MIME_MPEGTS,
            RunningJob::Byoc(_) => mime,
        };
        let config = PublisherConfig { mime: mime.to_owned(), ..Default::default() };
        Some(TricklePublisher::start(self.http(), &url, config).await)
    }

    /// Payments so far.
    pub(crate) fn payment_stats(&self) -> PaymentStats {
        match self {
            RunningJob::Lv2v(j) => j.payment_stats(),
            RunningJob::Byoc(j) => j.payment_stats(),
        }
    }

    /// Resolves when its payments stop for good.
    pub(crate) async fn payments_stopped(&self) -> PaymentStop {
        match self {
            RunningJob::Lv2v(j) => j.payments_stopped().await,
            RunningJob::Byoc(j) => j.payments_stopped().await,
        }
    }

    /// Stops the job on its orchestrator, saying why when it is left for another (go's BYOC
    /// gateway sends the reason as the stop's body). Problems are logged, never returned: the
    /// stream has moved on either way. Answers the job's payments, the stop's last one included.
    pub(crate) async fn stop(self, reason: Option<String>) -> PaymentStats {
        match &self {
            RunningJob::Lv2v(j) => {
                j.stop_payments().await;
                j.end_session().await;
            }
            RunningJob::Byoc(j) => {
                if let Err(e) = j.stop_with_reason(reason).await {
                    tracing::info!(orchestrator = %j.orchestrator, error = %e, "BYOC stop refused or failed");
                }
            }
        }
        self.payment_stats()
    }
}
