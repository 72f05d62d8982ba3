//! BYOC ("bring your own container") jobs: streams on `/ai/stream/start|payment|stop` and
//! single-shot requests on `/process/request/*`.
//!
//! A stream start is: select an orchestrator serving `byoc/{capability}` (by its
//! `/process/token` answer), pay up front (the orchestrator wants 60 s of credit; nothing when
//! it charges nothing), sign the job (`/sign-byoc-job`, V1 encoding), then
//! `POST /ai/stream/start`, waiting as long as go's gateway does (the job timeout plus 5 s). A
//! start we give up on is stopped on that orchestrator before the next is tried. A 402 means the
//! credit did not arrive or was not enough: start the payment session over and pay a fresh
//! preload, a bounded number of times ([`JobError::PaymentRequired`] after that). `stop` always
//! tells the orchestrator, also after errors, with a last payment when one is due.
//! Single-shot requests live in [`super::byoc_request`].

use gateway_core::capabilities::CapabilityQuery;
use gateway_core::jobs::{self, JobParameters, JobRequest, StreamUrls};
use gateway_core::rejection::JobError;
use gateway_core::rejection::RejectionReason;
use gateway_core::signer::SignByocJobRequest;
use gateway_core::trickle::SeqSpec;
use serde_json::Value;

use super::failover::{start_payment, Failover};
use super::{job_error, send, send_within, Attempt, JobPayments};
use crate::channels::{ControlWriter, JsonReader};
use crate::gateway::{Gateway, GatewayError};
use crate::payments::{PaymentKind, PaymentStats, PaymentStop, PaymentTarget};
use crate::signer_client::SignByocJob;
use crate::trickle::{
    PublisherConfig, SegmentGetClient, SubscriberConfig, TricklePublisher, TrickleSubscriber,
};

/// Default job timeout sent with BYOC jobs.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 70;
/// Default seconds of credit bought before a stream starts.
pub const DEFAULT_PRELOAD_SECONDS: u32 = 120;
/// Extra payments tried when a start answers 402.
pub const DEFAULT_PAYMENT_RETRIES: u32 = 2;

/// A BYOC stream to start.
#[derive(Debug, Clone)]
pub struct ByocJobRequest {
    /// Registered capability name, e.g. `text-reversal`.
    pub capability: String,
    /// Stream id (channel base name); random when `None`.
    pub stream_id: Option<String>,
    /// Parameters passed to the worker's start.
    pub params: Value,
    /// Open a gateway → worker media channel.
    pub enable_video_ingress: bool,
    /// Open a worker → gateway media channel.
    pub enable_video_egress: bool,
    /// Open a worker → gateway JSON-lines channel.
    pub enable_data_output: bool,
    /// Job timeout in seconds.
    pub timeout_seconds: u32,
    /// Seconds of credit to buy up front.
    pub preload_seconds: u32,
    /// Payments retried on 402.
    pub payment_retries: u32,
    /// Highest acceptable price, wei per second.
    pub max_price_wei_per_unit: Option<f64>,
}

impl ByocJobRequest {
    /// A request for `capability` with defaults (control and events channels only).
    pub fn new(capability: impl Into<String>) -> ByocJobRequest {
        ByocJobRequest {
            capability: capability.into(),
            stream_id: None,
            params: Value::Object(Default::default()),
            enable_video_ingress: false,
            enable_video_egress: false,
            enable_data_output: false,
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            preload_seconds: DEFAULT_PRELOAD_SECONDS,
            payment_retries: DEFAULT_PAYMENT_RETRIES,
            max_price_wei_per_unit: None,
        }
    }
}

/// What answered a [`Gateway::update_byoc_stream`].
#[derive(Debug, Clone)]
pub struct StreamUpdated {
    /// The orchestrator running the stream.
    pub orchestrator: String,
    /// The worker's reply, as relayed.
    pub body: bytes::Bytes,
}

/// A running BYOC stream.
pub struct ByocJob {
    /// Stream id.
    pub stream_id: String,
    /// The orchestrator running it.
    pub orchestrator: String,
    /// Its channels.
    pub urls: StreamUrls,
    /// The selected candidate's address (what a new selection excludes).
    pub(crate) address: String,
    job_header: String,
    pub(crate) http: reqwest::Client,
    reader: SegmentGetClient,
    payments: JobPayments,
}

impl std::fmt::Debug for ByocJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByocJob")
            .field("stream_id", &self.stream_id)
            .field("orchestrator", &self.orchestrator)
            .finish()
    }
}

impl Gateway {
    async fn signed_job(&self, mut job: JobRequest) -> Result<JobRequest, GatewayError> {
        if let Some(signer) = self.signer_addr() {
            let req = SignByocJobRequest {
                id: job.id.clone(),
                capability: job.capability.clone(),
                request: job.request.clone(),
                parameters: job.parameters.clone(),
                timeout_seconds: job.timeout_seconds,
            };
            let signed = signer.send(SignByocJob(req)).await.map_err(|_| GatewayError::Stopped)??;
            job.sender = signed.sender;
            job.sig = signed.signature;
        }
        Ok(job)
    }

    /// What every BYOC job does before it meets an orchestrator: check the timeout, sign `job`
    /// (its `capability` names the `byoc/NAME` query) and select orchestrators for it.
    pub(super) async fn prepare_byoc(
        &self,
        job: JobRequest,
        max_price_wei_per_unit: Option<f64>,
        exclude: Vec<String>,
    ) -> Result<PreparedByoc, GatewayError> {
        if job.timeout_seconds == 0 {
            return Err(JobError::InvalidRequest("timeout_seconds must be positive".into()).into());
        }
        let queries = vec![CapabilityQuery::byoc(job.capability.clone())
            .map_err(|e| JobError::InvalidRequest(e.to_string()))?];
        let job = self.signed_job(job).await?;
        let identity = self.identity().await?;
        let selection = self.select_as(&queries, identity.clone(), max_price_wei_per_unit, exclude).await?;
        Ok(PreparedByoc { queries, job, identity, selection })
    }

    /// Updates a running BYOC stream by its id, from any process (the stream need not have
    /// been started by this gateway): a job naming `stream_id` is signed, as go's gateway
    /// re-signs its caller's, paid, and sent to `/ai/stream/update` on each selected
    /// orchestrator in turn until one runs the stream. "Stream not found" (the worker's 404), a
    /// 5xx or no answer moves on; any other refusal is final.
    pub async fn update_byoc_stream(
        &self,
        capability: &str,
        stream_id: &str,
        params: bytes::Bytes,
    ) -> Result<StreamUpdated, GatewayError> {
        self.until_shutdown(self.update_byoc_stream_until_shutdown(capability, stream_id, params)).await
    }

    async fn update_byoc_stream_until_shutdown(
        &self,
        capability: &str,
        stream_id: &str,
        params: bytes::Bytes,
    ) -> Result<StreamUpdated, GatewayError> {
        if params.len() > jobs::MAX_STREAM_UPDATE_BYTES {
            return Err(JobError::InvalidRequest(format!(
                "update body of {} bytes is above the {} go's gateway accepts",
                params.len(),
                jobs::MAX_STREAM_UPDATE_BYTES
            ))
            .into());
        }
        if !gateway_core::trickle::is_valid_channel_name(stream_id) {
            return Err(JobError::InvalidRequest(format!(
                "stream id {stream_id:?} is not a valid channel name"
            ))
            .into());
        }
        let job = JobRequest::without_parameters(
            format!("update-{}", hex::encode(rand::random::<[u8; 6]>())),
            &serde_json::json!({ "stream_id": stream_id }),
            capability,
            jobs::BYOC_PAYMENT_JOB_TIMEOUT_SECONDS,
        );
        let PreparedByoc { queries, job, identity, selection } =
            self.prepare_byoc(job, None, Vec::new()).await?;
        let job_header = job.to_header();
        let failover = Failover {
            selection: &selection,
            queries: &queries,
            identity,
            kind: PaymentKind::Byoc { preload_seconds: gateway_core::signer::BYOC_MIN_PRELOAD_SECONDS },
            manifest_id: Some(stream_id.to_owned()),
        };
        let (job_header, params) = (&job_header, &params);
        let updated = self
            .first_success(failover, |_, attempt, creds| async move {
                let Attempt { origin, http, .. } = attempt;
                let req = creds.attach(
                    http.post(format!("{origin}{}", jobs::STREAM_UPDATE_PATH))
                        .header(jobs::HEADER_JOB, job_header)
                        .body(params.clone()),
                );
                let answer = send(req, jobs::STREAM_UPDATE_PATH).await?;
                if answer.status >= 300 {
                    // The worker's 404 says the stream runs elsewhere; a 5xx, that this one failed.
                    return Err(answer.rejection(jobs::STREAM_UPDATE_PATH));
                }
                Ok(StreamUpdated { orchestrator: origin, body: answer.body })
            })
            .await?;
        Ok(updated)
    }

    /// Starts a BYOC stream (see the module docs for the steps).
    /// Ends with [`GatewayError::Stopped`] when the gateway shuts down meanwhile.
    pub async fn start_byoc_job(&self, request: ByocJobRequest) -> Result<ByocJob, GatewayError> {
        self.until_shutdown(self.start_byoc_job_excluding(request, Vec::new())).await
    }

    /// [`Gateway::start_byoc_job`] on any orchestrator but those in `exclude`.
    pub(crate) async fn start_byoc_job_excluding(
        &self,
        request: ByocJobRequest,
        exclude: Vec<String>,
    ) -> Result<ByocJob, GatewayError> {
        let stream_id = request
            .stream_id
            .clone()
            .unwrap_or_else(|| format!("byoc-{}", hex::encode(rand::random::<[u8; 6]>())));
        if !gateway_core::trickle::is_valid_channel_name(&stream_id) {
            return Err(JobError::InvalidRequest(format!(
                "stream id {stream_id:?} is not a valid channel name"
            ))
            .into());
        }
        let parameters = JobParameters {
            enable_video_ingress: request.enable_video_ingress,
            enable_video_egress: request.enable_video_egress,
            enable_data_output: request.enable_data_output,
            ..Default::default()
        };
        let job = JobRequest {
            id: stream_id.clone(),
            request: serde_json::json!({ "stream_id": stream_id }).to_string(),
            parameters: serde_json::to_string(&parameters).unwrap_or_default(),
            capability: request.capability.clone(),
            timeout_seconds: request.timeout_seconds,
            ..Default::default()
        };
        let PreparedByoc { queries, job, identity, selection } =
            self.prepare_byoc(job, request.max_price_wei_per_unit, exclude).await?;
        let job_header = job.to_header();
        let signed = !job.sig.is_empty();
        let start_timeout = start_timeout(request.timeout_seconds);
        let failover = Failover {
            selection: &selection,
            queries: &queries,
            identity,
            kind: PaymentKind::Byoc { preload_seconds: request.preload_seconds },
            manifest_id: Some(stream_id.clone()),
        };
        let (request, job_header, stream_id) = (&request, &job_header, &stream_id);
        let started = self
            .first_success(failover, |candidate, attempt, creds| {
                let address = candidate.address.clone();
                async move {
                let Attempt { origin, http, actor_http, reader, mut session } = attempt;
                let mut creds = creds;
                let mut attempts = 0;
                let answer = loop {
                    let req = http
                        .post(format!("{origin}{}", jobs::STREAM_START_PATH))
                        .header(jobs::HEADER_JOB, job_header)
                        .header(jobs::HEADER_PAYMENT, &creds.payment)
                        .header(jobs::HEADER_SEGMENT, &creds.segment)
                        .json(&serde_json::json!({ "params": request.params }));
                    let answer = start_call(req, &http, &origin, job_header, start_timeout).await?;
                    if answer.status == jobs::STATUS_PAYMENT_REQUIRED
                        && attempts < request.payment_retries
                        && session.is_paying()
                    {
                        attempts += 1;
                        // The signer's state may say the credit covers the start (it would
                        // answer 482 and we would resend nothing): start its session over on
                        // fresh ticket parameters so the retry carries a real preload.
                        tracing::info!(orchestrator = %origin, attempts, "BYOC start wants payment (402); paying again");
                        session.restart().await.map_err(|error| RejectionReason::PaymentAfterRetry { error })?;
                        creds = start_payment(&mut session).await.map_err(RejectionReason::Payment)?;
                        continue;
                    }
                    break answer;
                };
                if answer.status != 200 {
                    let mut reason = answer.rejection(jobs::STREAM_START_PATH);
                    if let RejectionReason::Http { hint, .. } = &mut reason {
                        if signed && jobs::is_job_creds_refusal(answer.status, &answer.body) {
                            *hint = Some(jobs::JOB_CREDS_VERSION_HINT);
                        }
                    }
                    return Err(reason);
                }
                let urls = StreamUrls::from_headers(|n| answer.headers.get(n).and_then(|v| v.to_str().ok()));
                let payments = self.start_payments(
                    session,
                    PaymentTarget::Byoc { orchestrator: origin.clone(), job_header: job_header.clone() },
                    actor_http,
                    self.inner.config.byoc_payment_interval,
                );
                tracing::info!(orchestrator = %origin, stream_id = %stream_id, "BYOC stream started");
                Ok(ByocJob {
                    stream_id: stream_id.clone(),
                    orchestrator: origin,
                    urls,
                    address,
                    job_header: job_header.clone(),
                    http,
                    reader,
                    payments,
                })
            }
            })
            .await;
        match started {
            Ok(job) => Ok(job),
            // Every orchestrator wanted payment: say so rather than "none available".
            Err(JobError::NoOrchestratorAvailable { rejections })
                if !rejections.is_empty() && rejections.iter().all(|r| r.reason.is_payment_required()) =>
            {
                let message = rejections.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                Err(JobError::PaymentRequired { message }.into())
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl ByocJob {
    /// A writer of the control channel (text messages for `text-reversal`), with keepalive.
    pub async fn control(&self) -> Result<ControlWriter, JobError> {
        let url = self.urls.control_url.as_deref().ok_or_else(|| missing("control"))?;
        Ok(ControlWriter::connect(self.http.clone(), url, ControlWriter::default_keepalive()).await)
    }

    /// A reader of the data channel (JSON lines).
    pub fn data(&self) -> Result<JsonReader, JobError> {
        let url = self.urls.data_url.as_deref().ok_or_else(|| missing("data"))?;
        Ok(JsonReader::new(self.reader.clone(), url, SeqSpec::At(0)))
    }

    /// A reader of the events channel.
    pub fn events(&self) -> Result<JsonReader, JobError> {
        let url = self.urls.events_url.as_deref().ok_or_else(|| missing("events"))?;
        Ok(JsonReader::new(self.reader.clone(), url, SeqSpec::Current))
    }

    /// The HTTP client that reaches this job's orchestrator (its trust policy applied), for
    /// a program that relays the job's channels itself.
    pub fn orchestrator_client(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// A publisher of the media input channel.
    pub async fn publisher(&self, mime: &str) -> Result<TricklePublisher, JobError> {
        let url =
            self.urls.publish_url.as_deref().ok_or_else(|| missing("publish (enable_video_ingress)"))?;
        Ok(TricklePublisher::start(
            self.http.clone(),
            url,
            PublisherConfig { mime: mime.to_owned(), ..Default::default() },
        )
        .await)
    }

    /// A subscriber of the media output channel.
    pub fn output(&self, start: SeqSpec) -> Result<TrickleSubscriber, JobError> {
        let url =
            self.urls.subscribe_url.as_deref().ok_or_else(|| missing("subscribe (enable_video_egress)"))?;
        Ok(TrickleSubscriber::new(self.reader.clone(), url, SubscriberConfig { start, ..Default::default() }))
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

    /// Sends new parameters to the stream's worker (`POST /ai/stream/update`, the body passed
    /// on to the worker's `/stream/params` as is) and answers the worker's reply. The call
    /// carries a payment when one is due, as go's gateway pays every call it sends: go's
    /// orchestrator checks 60 s of balance on this route too. A body above
    /// [`jobs::MAX_STREAM_UPDATE_BYTES`] is refused here, as go's gateway refuses it.
    pub async fn update(&self, params: bytes::Bytes) -> Result<bytes::Bytes, JobError> {
        if params.len() > jobs::MAX_STREAM_UPDATE_BYTES {
            return Err(JobError::InvalidRequest(format!(
                "update body of {} bytes is above the {} go's gateway accepts",
                params.len(),
                jobs::MAX_STREAM_UPDATE_BYTES
            )));
        }
        let mut req = self
            .http
            .post(format!("{}{}", self.orchestrator, jobs::STREAM_UPDATE_PATH))
            .header(jobs::HEADER_JOB, &self.job_header)
            .body(params);
        if let Some(creds) = self.payments.call_payment().await {
            req = creds.attach(req);
        }
        let answer = send(req, jobs::STREAM_UPDATE_PATH).await.map_err(job_error)?;
        if answer.status >= 300 {
            return Err(job_error(answer.rejection(jobs::STREAM_UPDATE_PATH)));
        }
        Ok(answer.body)
    }

    /// Stops payments and the stream on the orchestrator. Always sends the stop, and reports
    /// its failure only after cleaning up locally. The stop carries a last payment when the
    /// signer says one is due: go's orchestrator checks the balance on stop too, and refuses a
    /// stop without 60 s of credit (the stream would keep running).
    pub async fn stop(self) -> Result<(), JobError> {
        self.stop_with_reason(None::<String>).await.map(|_| ())
    }

    /// [`ByocJob::stop`] with `body` passed on to the worker's stop (go's gateway passes its
    /// client's stop body on); answers the orchestrator's reply.
    pub async fn stop_with_body(self, body: bytes::Bytes) -> Result<bytes::Bytes, JobError> {
        self.stop_with_reason(Some(body)).await
    }

    /// [`ByocJob::stop`], telling the orchestrator why in the body, as go's gateway does when it
    /// moves a stream elsewhere (`sendStopStreamToOrch`).
    pub(crate) async fn stop_with_reason(
        &self,
        reason: Option<impl Into<reqwest::Body>>,
    ) -> Result<bytes::Bytes, JobError> {
        let last_payment = self.payments.stop_with_final_payment().await;
        let mut req = self
            .http
            .post(format!("{}{}", self.orchestrator, jobs::STREAM_STOP_PATH))
            .header(jobs::HEADER_JOB, &self.job_header);
        if let Some(reason) = reason {
            req = req.body(reason);
        }
        let paying = last_payment.is_some();
        if let Some(creds) = last_payment {
            req = creds.attach(req);
        }
        let answer = send(req, jobs::STREAM_STOP_PATH).await.map_err(job_error)?;
        if answer.status >= 300 {
            return Err(job_error(answer.rejection(jobs::STREAM_STOP_PATH)));
        }
        if paying {
            self.payments.final_payment_accepted();
        }
        Ok(answer.body)
    }
}

/// A signed BYOC job and the orchestrators selected for it.
pub(super) struct PreparedByoc {
    /// The `byoc/NAME` query.
    pub queries: Vec<CapabilityQuery>,
    /// The job, signed when a signer is configured.
    pub job: JobRequest,
    /// The signer's identity (`None` offchain).
    pub identity: Option<gateway_core::signer::SignerIdentity>,
    /// Candidates and rejections.
    pub selection: crate::selector::Selection,
}

/// How long a start may take: go's gateway waits for the job's timeout plus 5 s
/// (`byoc/job_gateway.go`, `sendJobToOrch`).
pub fn start_timeout(timeout_seconds: u32) -> std::time::Duration {
    std::time::Duration::from_secs(u64::from(timeout_seconds) + jobs::BYOC_START_GRACE_SECONDS)
}

/// Sends a start and waits `timeout` for its answer. A start we give up on may still start
/// the stream: it is stopped at once, and again if its late answer says it started, so nothing
/// runs and bills behind our back (go's gateway leaves such streams to the orchestrator).
async fn start_call(
    req: reqwest::RequestBuilder,
    http: &reqwest::Client,
    origin: &str,
    job_header: &str,
    timeout: std::time::Duration,
) -> Result<super::Answer, RejectionReason> {
    let endpoint = jobs::STREAM_START_PATH;
    let mut pending = tokio::spawn(req.send());
    let resp = match tokio::time::timeout(timeout, &mut pending).await {
        Ok(Ok(Ok(resp))) => resp,
        Ok(Ok(Err(e))) => {
            let message = crate::http::describe(&e);
            stop_abandoned(http, origin, job_header).await;
            return Err(RejectionReason::Transport { endpoint: endpoint.into(), message });
        }
        Ok(Err(join)) => {
            return Err(RejectionReason::InvalidAnswer {
                endpoint: endpoint.into(),
                reason: join.to_string(),
            })
        }
        Err(_) => {
            let (http, origin, job_header) = (http.clone(), origin.to_owned(), job_header.to_owned());
            tokio::spawn(async move {
                stop_abandoned(&http, &origin, &job_header).await;
                let late = tokio::time::timeout(ABANDONED_START_WATCH, pending).await;
                if let Ok(Ok(Ok(resp))) = late {
                    if resp.status().is_success() {
                        stop_abandoned(&http, &origin, &job_header).await;
                    }
                }
            });
            return Err(RejectionReason::NoAnswer {
                endpoint: endpoint.into(),
                within: timeout,
                abandoned_start_stopped: true,
            });
        }
    };
    super::Answer::read(resp, endpoint).await
}

/// How long a start we gave up on is watched for a late success that must be stopped.
const ABANDONED_START_WATCH: std::time::Duration = std::time::Duration::from_secs(120);

/// Best-effort stop of a start we gave up on (timed out or cut off).
async fn stop_abandoned(http: &reqwest::Client, origin: &str, job_header: &str) {
    let req = http.post(format!("{origin}{}", jobs::STREAM_STOP_PATH)).header(jobs::HEADER_JOB, job_header);
    match send_within(req, jobs::STREAM_STOP_PATH, super::START_TIMEOUT).await {
        Ok(a) if a.status < 300 => tracing::info!(orchestrator = %origin, "stopped an abandoned BYOC start"),
        Ok(a) => {
            tracing::warn!(orchestrator = %origin, status = a.status, "stop of an abandoned BYOC start refused")
        }
        Err(e) => {
            tracing::warn!(orchestrator = %origin, error = %e, "stop of an abandoned BYOC start failed")
        }
    }
}

fn missing(channel: &str) -> JobError {
    JobError::InvalidRequest(format!("the job has no {channel} channel"))
}
