//! Law 1 — the lifecycle is owned by one service.
//!
//! A run's status moves `queued → running → completed`; an [`Outcome`] exists
//! only once the run is completed, which [`RunState`] makes unrepresentable
//! otherwise. The only way to describe a change of state is a [`Transition`],
//! and the only way to build one is [`Transition::plan`], which accepts the
//! legal moves and nothing else:
//!
//! | from      | event                                   | to                    |
//! |-----------|-----------------------------------------|-----------------------|
//! | queued    | claim                                   | running               |
//! | queued    | complete(cancelled / blocked / failed)  | completed(outcome)    |
//! | running   | complete(any outcome)                   | completed(outcome)    |
//! | running   | requeue (retryable failure, release)    | queued                |
//! | completed | anything                                | refused: no-op        |
//!
//! A queued run cannot succeed without having run. Completing a completed run
//! is refused as [`TransitionRefused::AlreadyCompleted`], which callers treat
//! as "nothing to do", never as a second transition. The engine's lifecycle
//! module is the one caller that applies a transition to storage.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a run is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// Claimed by a worker and executing.
    Running,
    /// Finished; an outcome exists.
    Completed,
}

impl RunStatus {
    /// Every status.
    pub const ALL: [RunStatus; 3] = [RunStatus::Queued, RunStatus::Running, RunStatus::Completed];

    /// The stable name stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Queued or running: the states law 2's uniqueness covers.
    pub const fn is_active(self) -> bool {
        matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a completed run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything it set out to do was done.
    Succeeded,
    /// Some work units failed, others succeeded.
    PartiallySucceeded,
    /// It did not achieve its purpose.
    Failed,
    /// A precondition was not met; nothing was attempted.
    Blocked,
    /// Someone cancelled it.
    Cancelled,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 5] = [
        Outcome::Succeeded,
        Outcome::PartiallySucceeded,
        Outcome::Failed,
        Outcome::Blocked,
        Outcome::Cancelled,
    ];

    /// The stable name stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::PartiallySucceeded => "partially_succeeded",
            Outcome::Failed => "failed",
            Outcome::Blocked => "blocked",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether a run that never ran may end this way.
    pub const fn reachable_from_queued(self) -> bool {
        matches!(self, Outcome::Cancelled | Outcome::Blocked | Outcome::Failed)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status and outcome together: an outcome exists exactly when completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Waiting for a worker.
    Queued,
    /// Executing.
    Running,
    /// Finished with this outcome.
    Completed(Outcome),
}

impl RunState {
    /// The status part.
    pub const fn status(self) -> RunStatus {
        match self {
            RunState::Queued => RunStatus::Queued,
            RunState::Running => RunStatus::Running,
            RunState::Completed(_) => RunStatus::Completed,
        }
    }

    /// The outcome, once completed.
    pub const fn outcome(self) -> Option<Outcome> {
        match self {
            RunState::Completed(o) => Some(o),
            _ => None,
        }
    }

    /// Rebuilds a state from its stored columns, refusing impossible pairs.
    pub fn from_parts(status: RunStatus, outcome: Option<Outcome>) -> Option<Self> {
        match (status, outcome) {
            (RunStatus::Queued, None) => Some(RunState::Queued),
            (RunStatus::Running, None) => Some(RunState::Running),
            (RunStatus::Completed, Some(o)) => Some(RunState::Completed(o)),
            _ => None,
        }
    }

    /// Queued or running.
    pub const fn is_active(self) -> bool {
        self.status().is_active()
    }

    /// The run's status word, the one every surface shows (hub rows and
    /// pages, `runs list`, `runs show`, `run start --follow`): queued,
    /// running, succeeded, partially succeeded, failed, blocked, cancelled.
    pub const fn word(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Completed(Outcome::Succeeded) => "succeeded",
            RunState::Completed(Outcome::PartiallySucceeded) => "partially succeeded",
            RunState::Completed(Outcome::Failed) => "failed",
            RunState::Completed(Outcome::Blocked) => "blocked",
            RunState::Completed(Outcome::Cancelled) => "cancelled",
        }
    }

    /// The run's status bucket (the JSON `bucket`): blocked runs are in
    /// `failed`.
    pub const fn bucket(self) -> StatusBucket {
        match self {
            RunState::Queued => StatusBucket::Queued,
            RunState::Running => StatusBucket::Running,
            RunState::Completed(Outcome::Succeeded) => StatusBucket::Succeeded,
            RunState::Completed(Outcome::PartiallySucceeded) => StatusBucket::Partial,
            RunState::Completed(Outcome::Failed | Outcome::Blocked) => StatusBucket::Failed,
            RunState::Completed(Outcome::Cancelled) => StatusBucket::Cancelled,
        }
    }
}

/// The coarse status people filter by: status and outcome folded into one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusBucket {
    /// Queued.
    Queued,
    /// Running.
    Running,
    /// Completed, succeeded.
    Succeeded,
    /// Completed, partially succeeded.
    Partial,
    /// Completed, failed or blocked.
    Failed,
    /// Completed, cancelled.
    Cancelled,
}

impl StatusBucket {
    /// Every bucket.
    pub const ALL: [StatusBucket; 6] = [
        StatusBucket::Queued,
        StatusBucket::Running,
        StatusBucket::Succeeded,
        StatusBucket::Partial,
        StatusBucket::Failed,
        StatusBucket::Cancelled,
    ];

    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            StatusBucket::Queued => "queued",
            StatusBucket::Running => "running",
            StatusBucket::Succeeded => "succeeded",
            StatusBucket::Partial => "partial",
            StatusBucket::Failed => "failed",
            StatusBucket::Cancelled => "cancelled",
        }
    }

    /// Parses a bucket name, naming `field` on failure.
    pub fn parse(field: &str, s: &str) -> Result<Self, crate::FieldError> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
            crate::FieldError::new(
                field,
                "must be one of queued, running, succeeded, partial, failed, cancelled",
            )
        })
    }

    /// The (status, outcomes) pairs this bucket holds, for storage filters.
    pub const fn members(self) -> (RunStatus, &'static [Outcome]) {
        match self {
            StatusBucket::Queued => (RunStatus::Queued, &[]),
            StatusBucket::Running => (RunStatus::Running, &[]),
            StatusBucket::Succeeded => (RunStatus::Completed, &[Outcome::Succeeded]),
            StatusBucket::Partial => (RunStatus::Completed, &[Outcome::PartiallySucceeded]),
            StatusBucket::Failed => (RunStatus::Completed, &[Outcome::Failed, Outcome::Blocked]),
            StatusBucket::Cancelled => (RunStatus::Completed, &[Outcome::Cancelled]),
        }
    }
}

/// The `status` filter of every list (hub, API, `runs list --status`): a
/// bucket, or `blocked` alone (inside the `failed` bucket). Its labels are
/// the runs' status words ([`RunState::word`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusFilter {
    /// Every run of a bucket.
    Bucket(StatusBucket),
    /// Blocked runs only.
    Blocked,
}

impl From<StatusBucket> for StatusFilter {
    fn from(b: StatusBucket) -> Self {
        StatusFilter::Bucket(b)
    }
}

impl StatusFilter {
    /// Every filter value, in the order a filter offers them.
    pub const ALL: [StatusFilter; 7] = [
        StatusFilter::Bucket(StatusBucket::Queued),
        StatusFilter::Bucket(StatusBucket::Running),
        StatusFilter::Bucket(StatusBucket::Succeeded),
        StatusFilter::Bucket(StatusBucket::Partial),
        StatusFilter::Bucket(StatusBucket::Failed),
        StatusFilter::Blocked,
        StatusFilter::Bucket(StatusBucket::Cancelled),
    ];

    /// The stable value (a bucket name, or `blocked`).
    pub const fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Bucket(b) => b.as_str(),
            StatusFilter::Blocked => "blocked",
        }
    }

    /// What a filter shows: the status words of the runs it selects.
    pub const fn label(self) -> &'static str {
        match self {
            StatusFilter::Bucket(StatusBucket::Queued) => "queued",
            StatusFilter::Bucket(StatusBucket::Running) => "running",
            StatusFilter::Bucket(StatusBucket::Succeeded) => "succeeded",
            StatusFilter::Bucket(StatusBucket::Partial) => "partially succeeded",
            StatusFilter::Bucket(StatusBucket::Failed) => "failed or blocked",
            StatusFilter::Blocked => "blocked",
            StatusFilter::Bucket(StatusBucket::Cancelled) => "cancelled",
        }
    }

    /// Parses a filter value, naming `field` on failure.
    pub fn parse(field: &str, s: &str) -> Result<Self, crate::FieldError> {
        Self::ALL.into_iter().find(|v| v.as_str() == s.trim()).ok_or_else(|| {
            crate::FieldError::new(
                field,
                "must be one of queued, running, succeeded, partial, failed, blocked, cancelled",
            )
        })
    }

    /// The (status, outcomes) pairs it selects, for storage filters.
    pub const fn members(self) -> (RunStatus, &'static [Outcome]) {
        match self {
            StatusFilter::Bucket(b) => b.members(),
            StatusFilter::Blocked => (RunStatus::Completed, &[Outcome::Blocked]),
        }
    }

    /// Whether a run in `state` is selected.
    pub fn selects(self, state: RunState) -> bool {
        let (status, outcomes) = self.members();
        state.status() == status && (outcomes.is_empty() || state.outcome().is_some_and(|o| outcomes.contains(&o)))
    }
}

/// Something that happens to a run and may change its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LifecycleEvent {
    /// A worker takes a queued run.
    Claim,
    /// A running run goes back to the queue (retryable failure, release on
    /// shutdown).
    Requeue,
    /// The run ends with an outcome.
    Complete(Outcome),
}

/// Why a transition was not planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransitionRefused {
    /// The run already completed; completing again is a no-op.
    #[error("the run already completed ({0})")]
    AlreadyCompleted(Outcome),
    /// The event is not legal from this status.
    #[error("{event:?} is not legal for a {from} run")]
    Illegal {
        /// The status the run is in.
        from: RunStatus,
        /// The refused event.
        event: LifecycleEvent,
    },
}

/// A legal change of state. Only [`Transition::plan`] builds one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    from: RunStatus,
    to: RunState,
    event: LifecycleEvent,
}

impl Transition {
    /// Plans `event` for a run currently in `current`, or says why not.
    pub fn plan(current: RunState, event: LifecycleEvent) -> Result<Transition, TransitionRefused> {
        let to = match (current, event) {
            (RunState::Completed(o), _) => return Err(TransitionRefused::AlreadyCompleted(o)),
            (RunState::Queued, LifecycleEvent::Claim) => RunState::Running,
            (RunState::Queued, LifecycleEvent::Complete(o)) if o.reachable_from_queued() => RunState::Completed(o),
            (RunState::Running, LifecycleEvent::Complete(o)) => RunState::Completed(o),
            (RunState::Running, LifecycleEvent::Requeue) => RunState::Queued,
            (from, event) => {
                return Err(TransitionRefused::Illegal {
                    from: from.status(),
                    event,
                });
            }
        };
        Ok(Transition {
            from: current.status(),
            to,
            event,
        })
    }

    /// The status the run must still be in for the write to apply.
    pub const fn from(&self) -> RunStatus {
        self.from
    }

    /// The state after the transition.
    pub const fn to(&self) -> RunState {
        self.to
    }

    /// The event that caused it.
    pub const fn event(&self) -> LifecycleEvent {
        self.event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_state() -> impl Strategy<Value = RunState> {
        prop_oneof![
            Just(RunState::Queued),
            Just(RunState::Running),
            proptest::sample::select(Outcome::ALL.to_vec()).prop_map(RunState::Completed),
        ]
    }

    fn any_event() -> impl Strategy<Value = LifecycleEvent> {
        prop_oneof![
            Just(LifecycleEvent::Claim),
            Just(LifecycleEvent::Requeue),
            proptest::sample::select(Outcome::ALL.to_vec()).prop_map(LifecycleEvent::Complete),
        ]
    }

    proptest! {
        #[test]
        fn completed_runs_never_transition(o in proptest::sample::select(Outcome::ALL.to_vec()), e in any_event()) {
            prop_assert_eq!(Transition::plan(RunState::Completed(o), e), Err(TransitionRefused::AlreadyCompleted(o)));
        }

        #[test]
        fn planned_transitions_follow_the_table(s in any_state(), e in any_event()) {
            if let Ok(t) = Transition::plan(s, e) {
                prop_assert_eq!(t.from(), s.status());
                let legal = matches!(
                    (s.status(), t.to().status()),
                    (RunStatus::Queued, RunStatus::Running)
                        | (RunStatus::Queued, RunStatus::Completed)
                        | (RunStatus::Running, RunStatus::Completed)
                        | (RunStatus::Running, RunStatus::Queued)
                );
                prop_assert!(legal, "{:?} --{:?}--> {:?}", s, e, t.to());
                // an outcome exists exactly when completed
                prop_assert_eq!(t.to().outcome().is_some(), t.to().status() == RunStatus::Completed);
                if let LifecycleEvent::Complete(o) = e {
                    prop_assert_eq!(t.to(), RunState::Completed(o));
                }
            }
        }

        #[test]
        fn stored_parts_round_trip(s in any_state()) {
            prop_assert_eq!(RunState::from_parts(s.status(), s.outcome()), Some(s));
        }
    }

    #[test]
    fn a_queued_run_cannot_succeed_without_running() {
        for o in [Outcome::Succeeded, Outcome::PartiallySucceeded] {
            assert!(matches!(
                Transition::plan(RunState::Queued, LifecycleEvent::Complete(o)),
                Err(TransitionRefused::Illegal { .. })
            ));
        }
        for o in [Outcome::Cancelled, Outcome::Blocked, Outcome::Failed] {
            assert!(Transition::plan(RunState::Queued, LifecycleEvent::Complete(o)).is_ok());
        }
    }

    #[test]
    fn requeue_and_claim_only_from_their_status() {
        assert!(Transition::plan(RunState::Queued, LifecycleEvent::Requeue).is_err());
        assert!(Transition::plan(RunState::Running, LifecycleEvent::Claim).is_err());
        assert_eq!(
            Transition::plan(RunState::Running, LifecycleEvent::Requeue)
                .unwrap()
                .to(),
            RunState::Queued
        );
    }

    #[test]
    fn impossible_stored_pairs_are_refused() {
        assert_eq!(RunState::from_parts(RunStatus::Completed, None), None);
        assert_eq!(RunState::from_parts(RunStatus::Queued, Some(Outcome::Failed)), None);
    }

    #[test]
    fn buckets_cover_every_state_once() {
        let mut seen = std::collections::HashSet::new();
        for s in [RunState::Queued, RunState::Running]
            .into_iter()
            .chain(Outcome::ALL.into_iter().map(RunState::Completed))
        {
            let b = s.bucket();
            let (status, outcomes) = b.members();
            assert_eq!(status, s.status());
            if let Some(o) = s.outcome() {
                assert!(outcomes.contains(&o));
            }
            seen.insert(b);
        }
        assert_eq!(seen.len(), StatusBucket::ALL.len());
        for f in StatusFilter::ALL {
            assert_eq!(StatusFilter::parse("status", f.as_str()).unwrap(), f);
        }
        let blocked = RunState::Completed(Outcome::Blocked);
        assert!(StatusFilter::Blocked.selects(blocked));
        assert!(StatusFilter::Bucket(StatusBucket::Failed).selects(blocked));
        assert!(!StatusFilter::Blocked.selects(RunState::Completed(Outcome::Failed)));
        assert_eq!(blocked.word(), "blocked", "the word a blocked run shows everywhere");
        assert_eq!(StatusFilter::Blocked.label(), blocked.word());
        assert_eq!(StatusBucket::parse("status", "partial").unwrap(), StatusBucket::Partial);
        assert_eq!(StatusBucket::parse("status", "bogus").unwrap_err().field, "status");
    }
}
