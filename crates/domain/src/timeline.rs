//! The vocabulary of a run's timeline: every event a run can record.

use crate::Timestamp;
use crate::ids::{RunId, UserId};
use serde::{Deserialize, Serialize};

/// One kind of timeline event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunEventKind {
    /// The run was created by a start.
    Created,
    /// Another start joined the active run.
    Joined,
    /// A worker claimed the run (attempt n).
    Claimed,
    /// Work units were planned (total set).
    UnitsPlanned,
    /// Child runs were planned (fan-out).
    ChildrenPlanned,
    /// The run entered a phase.
    PhaseStarted,
    /// A retryable failure sent the run back to the queue.
    RetryScheduled,
    /// A worker released the run (shutdown) for another to take.
    Released,
    /// Someone asked to cancel the run.
    CancelRequested,
    /// The run completed.
    Completed,
    /// Terminal notifications were written.
    Notified,
    /// The reconciler completed the stale run.
    Reconciled,
    /// A result arrived after the run was reconciled or re-claimed.
    LateResultIgnored,
}

impl RunEventKind {
    /// Every kind.
    pub const ALL: [RunEventKind; 13] = [
        RunEventKind::Created,
        RunEventKind::Joined,
        RunEventKind::Claimed,
        RunEventKind::UnitsPlanned,
        RunEventKind::ChildrenPlanned,
        RunEventKind::PhaseStarted,
        RunEventKind::RetryScheduled,
        RunEventKind::Released,
        RunEventKind::CancelRequested,
        RunEventKind::Completed,
        RunEventKind::Notified,
        RunEventKind::Reconciled,
        RunEventKind::LateResultIgnored,
    ];

    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunEventKind::Created => "created",
            RunEventKind::Joined => "joined",
            RunEventKind::Claimed => "claimed",
            RunEventKind::UnitsPlanned => "units_planned",
            RunEventKind::ChildrenPlanned => "children_planned",
            RunEventKind::PhaseStarted => "phase_started",
            RunEventKind::RetryScheduled => "retry_scheduled",
            RunEventKind::Released => "released",
            RunEventKind::CancelRequested => "cancel_requested",
            RunEventKind::Completed => "completed",
            RunEventKind::Notified => "notified",
            RunEventKind::Reconciled => "reconciled",
            RunEventKind::LateResultIgnored => "late_result_ignored",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One timeline entry.
#[derive(Clone, Debug, PartialEq)]
pub struct RunEvent {
    /// Sequence number (orders the timeline).
    pub id: i64,
    /// The run.
    pub run_id: RunId,
    /// When.
    pub at: Timestamp,
    /// What.
    pub kind: RunEventKind,
    /// Who, when a user.
    pub actor_id: Option<UserId>,
    /// The attempt it concerns.
    pub attempt: Option<u32>,
    /// Identifiers, counts and codes only.
    pub detail: serde_json::Value,
}

/// A timeline entry to append.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// The run.
    pub run_id: RunId,
    /// What.
    pub kind: RunEventKind,
    /// Who, when a user.
    pub actor_id: Option<UserId>,
    /// The attempt it concerns.
    pub attempt: Option<u32>,
    /// Identifiers, counts and codes only.
    pub detail: serde_json::Value,
    /// When.
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in RunEventKind::ALL {
            assert_eq!(RunEventKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(k.as_str()));
        }
    }
}
