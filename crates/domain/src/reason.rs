//! Law 8 — failures are safe to show: stable reason codes, each with an
//! operator message and a next step.
//!
//! A failure shown anywhere is a [`ReasonCode`] plus a sanitized, bounded
//! message ([`crate::sanitize`]). The next step always comes from this
//! catalog, so the advice for a code has exactly one home.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::sanitize::SafeText;

/// A stable failure reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReasonCode {
    /// The provider answered 429 / throttled; retried with backoff.
    #[serde(rename = "provider.throttled")]
    ProviderThrottled,
    /// Authentication to the tenant failed.
    #[serde(rename = "provider.auth_failed")]
    ProviderAuthFailed,
    /// The app registration lacks a permission.
    #[serde(rename = "provider.permission_missing")]
    ProviderPermissionMissing,
    /// The provider is unavailable (5xx, timeout).
    #[serde(rename = "provider.unavailable")]
    ProviderUnavailable,
    /// The tenant has no provider configured.
    #[serde(rename = "provider.not_configured")]
    ProviderNotConfigured,
    /// The object is not in the tenant (any more).
    #[serde(rename = "provider.not_found")]
    ProviderNotFound,
    /// The provider refused a payload (400).
    #[serde(rename = "provider.invalid_payload")]
    ProviderInvalidPayload,
    /// The provider refused a write that conflicts with the tenant's state (409).
    #[serde(rename = "provider.conflict")]
    ProviderConflict,
    /// What the provider returned is not what its contract promises: a
    /// settings count that differs from `settingCount`, a malformed file, an
    /// unknown `@odata.type`.
    #[serde(rename = "provider.malformed")]
    ProviderMalformed,
    /// The run stopped reporting and was completed by the reconciler.
    #[serde(rename = "run.stale_reconciled")]
    RunStaleReconciled,
    /// Someone cancelled the run.
    #[serde(rename = "run.cancelled")]
    RunCancelled,
    /// A precondition was not met.
    #[serde(rename = "run.blocked_precondition")]
    RunBlockedPrecondition,
    /// The run used up its attempts on retryable failures.
    #[serde(rename = "run.attempts_exhausted")]
    RunAttemptsExhausted,
    /// One or more child runs did not succeed.
    #[serde(rename = "run.children_failed")]
    RunChildrenFailed,
    /// One or more work units failed.
    #[serde(rename = "unit.failed")]
    UnitFailed,
    /// An item could not be processed.
    #[serde(rename = "unit.invalid_payload")]
    UnitInvalidPayload,
    /// Anything unexpected (a bug, a panic).
    #[serde(rename = "internal.error")]
    InternalError,
}

/// What the catalog says about a reason code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReasonInfo {
    /// The stable code.
    pub code: &'static str,
    /// What happened, for an operator.
    pub message: &'static str,
    /// What to do next.
    pub next_step: &'static str,
    /// Whether trying again later may succeed without anyone acting.
    pub retryable: bool,
}

impl ReasonCode {
    /// Every code.
    pub const ALL: [ReasonCode; 17] = [
        ReasonCode::ProviderThrottled,
        ReasonCode::ProviderAuthFailed,
        ReasonCode::ProviderPermissionMissing,
        ReasonCode::ProviderUnavailable,
        ReasonCode::ProviderNotConfigured,
        ReasonCode::ProviderNotFound,
        ReasonCode::ProviderInvalidPayload,
        ReasonCode::ProviderConflict,
        ReasonCode::ProviderMalformed,
        ReasonCode::RunStaleReconciled,
        ReasonCode::RunCancelled,
        ReasonCode::RunBlockedPrecondition,
        ReasonCode::RunAttemptsExhausted,
        ReasonCode::RunChildrenFailed,
        ReasonCode::UnitFailed,
        ReasonCode::UnitInvalidPayload,
        ReasonCode::InternalError,
    ];

    /// The catalog entry.
    pub const fn info(self) -> ReasonInfo {
        let (code, message, next_step, retryable) = match self {
            ReasonCode::ProviderThrottled => (
                "provider.throttled",
                "The tenant's service throttled TenantAtlas's requests.",
                "No action needed: the run retries automatically with backoff. If it keeps happening, run fewer operations against this tenant at once.",
                true,
            ),
            ReasonCode::ProviderAuthFailed => (
                "provider.auth_failed",
                "TenantAtlas could not sign in to the tenant.",
                "Check the tenant's app registration (client id, secret or certificate, expiry), update the tenant's provider settings, then start the operation again.",
                false,
            ),
            ReasonCode::ProviderPermissionMissing => (
                "provider.permission_missing",
                "The tenant's app registration lacks a permission this operation needs.",
                "Grant the missing Microsoft Graph application permission with admin consent in the tenant, then start the operation again.",
                false,
            ),
            ReasonCode::ProviderUnavailable => (
                "provider.unavailable",
                "The tenant's service was unavailable.",
                "No action needed: the run retries automatically. If it keeps failing, check the service health of the tenant and start the operation again later.",
                true,
            ),
            ReasonCode::ProviderNotConfigured => (
                "provider.not_configured",
                "The tenant has no provider connection configured.",
                "Configure the tenant's provider connection, then start the operation again.",
                false,
            ),
            ReasonCode::ProviderNotFound => (
                "provider.not_found",
                "The object is not in the tenant (it may have been deleted meanwhile).",
                "No action needed if it was deleted on purpose; otherwise sync the tenant's inventory and start the operation again.",
                false,
            ),
            ReasonCode::ProviderInvalidPayload => (
                "provider.invalid_payload",
                "The tenant's service refused what TenantAtlas sent.",
                "Read the provider's message in the failure; correct the source object or its mapping, then start the operation again.",
                false,
            ),
            ReasonCode::ProviderConflict => (
                "provider.conflict",
                "The tenant's service refused a change that conflicts with the tenant's current state.",
                "Sync the tenant's inventory to see its current state, then start the operation again.",
                false,
            ),
            ReasonCode::ProviderMalformed => (
                "provider.malformed",
                "What the tenant's provider returned is incomplete or not in the expected shape.",
                "Read the failure message for what was wrong; for a directory tenant fix the named file, for Microsoft Graph start the operation again later.",
                false,
            ),
            ReasonCode::RunStaleReconciled => (
                "run.stale_reconciled",
                "The run stopped reporting progress and was reconciled as failed.",
                "Start the operation again. If runs keep going stale, check that workers are running and healthy.",
                false,
            ),
            ReasonCode::RunCancelled => (
                "run.cancelled",
                "The run was cancelled.",
                "Start the operation again when you need it.",
                false,
            ),
            ReasonCode::RunBlockedPrecondition => (
                "run.blocked_precondition",
                "A precondition for this operation was not met, so nothing was changed.",
                "Resolve the condition described in the failure, then start the operation again.",
                false,
            ),
            ReasonCode::RunAttemptsExhausted => (
                "run.attempts_exhausted",
                "The run failed on every attempt it was allowed.",
                "Review the failures of the last attempt; fix their cause, then start the operation again.",
                false,
            ),
            ReasonCode::RunChildrenFailed => (
                "run.children_failed",
                "Some of the runs this operation fanned out to did not succeed.",
                "Open the related runs that failed and follow their next steps.",
                false,
            ),
            ReasonCode::UnitFailed => (
                "unit.failed",
                "Some work items of this run failed.",
                "Review the failed items; start the operation again to retry them.",
                false,
            ),
            ReasonCode::UnitInvalidPayload => (
                "unit.invalid_payload",
                "An item returned by the tenant could not be processed.",
                "Review the failed items; correct the source object in the tenant, then start the operation again.",
                false,
            ),
            ReasonCode::InternalError => (
                "internal.error",
                "An unexpected error occurred inside TenantAtlas.",
                "Start the operation again. If it fails the same way, contact support with the run id.",
                true,
            ),
        };
        ReasonInfo {
            code,
            message,
            next_step,
            retryable,
        }
    }

    /// The stable code string.
    pub const fn as_str(self) -> &'static str {
        self.info().code
    }

    /// Parses a code string.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failure of a run: a reason code and a sanitized message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The stable code.
    pub reason_code: ReasonCode,
    /// The sanitized, bounded message.
    pub message: SafeText,
}

impl Failure {
    /// A failure with a raw message, which is sanitized here.
    pub fn new(reason_code: ReasonCode, raw_message: &str) -> Self {
        Self {
            reason_code,
            message: SafeText::sanitize(raw_message),
        }
    }

    /// A failure whose message is the catalog's own.
    pub fn from_code(reason_code: ReasonCode) -> Self {
        Self::new(reason_code, reason_code.info().message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_parse_back_and_serialize_as_their_code() {
        let mut seen = std::collections::HashSet::new();
        for c in ReasonCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {}", c.as_str());
            assert_eq!(ReasonCode::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), serde_json::json!(c.as_str()));
            let info = c.info();
            assert!(!info.message.is_empty() && !info.next_step.is_empty());
        }
    }

    #[test]
    fn the_issue_named_codes_exist() {
        for code in [
            "provider.throttled",
            "provider.auth_failed",
            "provider.permission_missing",
            "provider.unavailable",
            "run.stale_reconciled",
            "run.cancelled",
            "run.blocked_precondition",
            "unit.invalid_payload",
            "internal.error",
        ] {
            assert!(ReasonCode::parse(code).is_some(), "{code}");
        }
    }

    #[test]
    fn failure_messages_are_sanitized_on_construction() {
        let f = Failure::new(ReasonCode::ProviderAuthFailed, "401 for admin@contoso.com");
        assert!(!f.message.as_str().contains("contoso.com"));
    }
}
