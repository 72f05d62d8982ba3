//! The one failover loop every job kind starts through: for each selected candidate, fastest
//! first, prepare the attempt (clients and a payment session), get the first payment, and run
//! the job kind's start; the first success wins, and every failure is kept as a typed
//! [`RejectionReason`] for [`JobError::NoOrchestratorAvailable`].

use std::future::Future;

use gateway_core::capabilities::CapabilityQuery;
use gateway_core::error::SignerError;
use gateway_core::rejection::JobError;
use gateway_core::rejection::{OrchestratorRejection, RejectionReason};
use gateway_core::signer::SignerIdentity;

use super::Attempt;
use crate::gateway::Gateway;
use crate::payments::{PaymentCredentials, PaymentKind, PaymentSession};
use crate::selector::{Candidate, Selection};

/// What a job kind tells the loop about its attempts.
pub(crate) struct Failover<'a> {
    /// Candidates (fastest first) and the selection's own rejections.
    pub selection: &'a Selection,
    /// What the job needs (for payments and 480 refreshes).
    pub queries: &'a [CapabilityQuery],
    /// The signer's identity (`None` offchain).
    pub identity: Option<SignerIdentity>,
    /// What is paid for.
    pub kind: PaymentKind,
    /// The id payments name from the first one on (BYOC: the job's id). LV2V learns its id
    /// from the start answer and sets it then.
    pub manifest_id: Option<String>,
}

impl Gateway {
    /// Runs `start` on each candidate of `failover.selection` in turn until one succeeds.
    /// `start` gets the prepared attempt and the credentials of the first payment (empty ones
    /// when a BYOC credit still covers the start), and says why the candidate failed when it
    /// did; a start that gives up on a candidate cleans up after itself there.
    pub(crate) async fn first_success<T, F, Fut>(
        &self,
        failover: Failover<'_>,
        mut start: F,
    ) -> Result<T, JobError>
    where
        F: FnMut(&Candidate, Attempt, PaymentCredentials) -> Fut,
        Fut: Future<Output = Result<T, RejectionReason>>,
    {
        let mut rejections = failover.selection.rejections.clone();
        for candidate in &failover.selection.candidates {
            let reject = |reason| OrchestratorRejection::new(candidate.address.clone(), reason);
            let mut attempt = match self.attempt(
                candidate,
                failover.queries,
                failover.identity.clone(),
                failover.kind.clone(),
            ) {
                Ok(a) => a,
                Err(e) => {
                    rejections.push(reject(RejectionReason::ClientBuild(e.to_string())));
                    continue;
                }
            };
            if let Some(id) = &failover.manifest_id {
                attempt.session.set_manifest_id(id.clone());
            }
            let creds = match start_payment(&mut attempt.session).await {
                Ok(c) => c,
                Err(e) => {
                    rejections.push(reject(RejectionReason::Payment(e)));
                    continue;
                }
            };
            match start(candidate, attempt, creds).await {
                Ok(started) => return Ok(started),
                Err(reason) => rejections.push(reject(reason)),
            }
        }
        Err(JobError::NoOrchestratorAvailable { rejections })
    }
}

/// The payment a start carries. BYOC buys credit up front: a 482 there says an earlier
/// attempt's credit still covers the start, which then goes without a payment (empty
/// credentials). For LV2V a 482 is a failure like any other.
pub(crate) async fn start_payment(session: &mut PaymentSession) -> Result<PaymentCredentials, SignerError> {
    match session.next_payment().await {
        Err(SignerError::SkipCycle) if matches!(session.kind(), PaymentKind::Byoc { .. }) => {
            Ok(PaymentCredentials { payment: String::new(), segment: String::new() })
        }
        other => other,
    }
}
