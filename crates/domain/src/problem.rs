//! Law 6 — one truth, every surface; law 7 — stale runs are visible.
//!
//! [`classify`] is the single function that says what a run means to an
//! operator at a given moment. Every surface — dashboards, the operations
//! list and its filter, run detail, the system views, notifications, the
//! live widget — calls it (or, inside SQL, the predicate the store compiles
//! from [`Thresholds`], which the conformance suite holds against this
//! function).
//!
//! An active run is *likely stale* ([`ProblemClass::ActiveStale`]) from the
//! moment [`stale_at`] returns, the earliest of:
//!
//! - queued: `available_at + queued` (queued too long once due);
//! - running: its lease expiry; `last signal + heartbeat`, where the last
//!   signal is the last heartbeat (a claim counts as one), else the start;
//! - running, counted: its progress deadline — no unit finished for
//!   [`PROGRESS_INTERVALS`] times its average unit time (at least the
//!   heartbeat threshold; see [`progress_deadline`]), so a handler that still
//!   heartbeats but makes no progress shows as "likely stuck" before its
//!   lease runs out;
//! - running, not counted: `started_at + running_max`, the adaptive duration
//!   threshold ([`adaptive_running_max`]).
//!
//! Only some stale runs may be *reconciled* ([`reconcilable`]): queued past
//! the threshold, or running past the lease — a worker that still holds a
//! live lease is never overruled.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::FieldError;
use crate::catalog::{Catalog, OperationType, StaleThresholds, TypeSpec};
use crate::lifecycle::{Outcome, RunState};
use crate::run::Run;
use crate::timestamp::Timestamp;

/// What a run means to an operator right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemClass {
    /// Queued or running, and healthy.
    Active,
    /// Queued or running, but likely stuck.
    ActiveStale,
    /// Completed failed, partially succeeded or blocked: someone should look.
    NeedsFollowUp,
    /// Completed by the reconciler after going stale.
    Reconciled,
    /// Completed successfully.
    Ok,
    /// Cancelled.
    Cancelled,
}

impl ProblemClass {
    /// Every class.
    pub const ALL: [ProblemClass; 6] = [
        ProblemClass::Active,
        ProblemClass::ActiveStale,
        ProblemClass::NeedsFollowUp,
        ProblemClass::Reconciled,
        ProblemClass::Ok,
        ProblemClass::Cancelled,
    ];

    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProblemClass::Active => "active",
            ProblemClass::ActiveStale => "active_stale",
            ProblemClass::NeedsFollowUp => "needs_follow_up",
            ProblemClass::Reconciled => "reconciled",
            ProblemClass::Ok => "ok",
            ProblemClass::Cancelled => "cancelled",
        }
    }

    /// What people read.
    pub const fn label(self) -> &'static str {
        match self {
            ProblemClass::Active => "Active",
            ProblemClass::ActiveStale => "Likely stale",
            ProblemClass::NeedsFollowUp => "Needs follow-up",
            ProblemClass::Reconciled => "Reconciled",
            ProblemClass::Ok => "OK",
            ProblemClass::Cancelled => "Cancelled",
        }
    }

    /// Parses a class name, naming `field` on failure.
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        Self::ALL.into_iter().find(|c| c.as_str() == s.trim()).ok_or_else(|| {
            FieldError::new(
                field,
                "must be one of active, active_stale, needs_follow_up, reconciled, ok, cancelled",
            )
        })
    }
}

impl fmt::Display for ProblemClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stale thresholds for every operation type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thresholds {
    per_type: Vec<StaleThresholds>,
}

impl Thresholds {
    /// The thresholds of `catalog`'s types; every other type (a run of a
    /// type this build cannot execute) gets [`StaleThresholds::DEFAULT`].
    pub fn of_catalog(catalog: &Catalog) -> Self {
        Self {
            per_type: OperationType::ALL
                .iter()
                .map(|t| catalog.spec(*t).map_or(StaleThresholds::DEFAULT, |s| s.stale))
                .collect(),
        }
    }

    /// Sets the adaptive running threshold of one type.
    pub fn with_running_max(mut self, t: OperationType, max: Option<Duration>) -> Self {
        if let Some(i) = OperationType::ALL.iter().position(|x| *x == t) {
            self.per_type[i].running_max = max;
        }
        self
    }

    /// Replaces the thresholds of one type.
    pub fn with(mut self, t: OperationType, s: StaleThresholds) -> Self {
        if let Some(i) = OperationType::ALL.iter().position(|x| *x == t) {
            self.per_type[i] = s;
        }
        self
    }

    /// The thresholds of `t`.
    pub fn of(&self, t: OperationType) -> StaleThresholds {
        OperationType::ALL
            .iter()
            .position(|x| *x == t)
            .and_then(|i| self.per_type.get(i).copied())
            .unwrap_or(StaleThresholds::DEFAULT)
    }

    /// Every type with its thresholds (what the store compiles into SQL).
    pub fn iter(&self) -> impl Iterator<Item = (OperationType, StaleThresholds)> + '_ {
        OperationType::ALL.iter().map(|t| (*t, self.of(*t)))
    }
}

impl Default for Thresholds {
    /// [`StaleThresholds::DEFAULT`] for every type.
    fn default() -> Self {
        Self::of_catalog(&Catalog::EMPTY)
    }
}

/// How many average unit times without progress make a counted run
/// likely stale.
pub const PROGRESS_INTERVALS: u32 = 5;
/// The adaptive running threshold is this many times the p95 duration.
pub const ADAPTIVE_FACTOR: u32 = 3;
/// Successful runs needed before the adaptive threshold applies.
pub const ADAPTIVE_MIN_SAMPLES: usize = 20;

fn last_signal(run: &Run) -> Timestamp {
    run.heartbeat_at.or(run.started_at).unwrap_or(run.created_at)
}

/// The moment an active run becomes likely stale; `None` once completed.
pub fn stale_at(run: &Run, thresholds: &Thresholds) -> Option<Timestamp> {
    let t = thresholds.of(run.op_type);
    match run.state {
        RunState::Queued => Some(run.available_at.plus(t.queued)),
        RunState::Running => {
            let mut at = last_signal(run).plus(t.heartbeat);
            if let Some(l) = &run.lease {
                at = at.min(l.expires_at);
            }
            if let Some(p) = run.progress_stale_at {
                at = at.min(p);
            }
            if let (None, Some(max), Some(started)) = (run.units.total, t.running_max, run.started_at) {
                at = at.min(started.plus(max));
            }
            Some(at)
        }
        RunState::Completed(_) => None,
    }
}

/// Whether the reconciler may complete this run (law 7): queued past its
/// threshold, or running past its lease (or, with no lease, silent past the
/// heartbeat threshold).
pub fn reconcilable(run: &Run, now: Timestamp, thresholds: &Thresholds) -> bool {
    let t = thresholds.of(run.op_type);
    match (&run.state, &run.lease) {
        (RunState::Queued, _) => now >= run.available_at.plus(t.queued),
        (RunState::Running, Some(l)) => now >= l.expires_at,
        (RunState::Running, None) => now >= last_signal(run).plus(t.heartbeat),
        (RunState::Completed(_), _) => false,
    }
}

/// Whether the reconciler gives a stale run its next attempt instead of
/// failing it (law 7): it was running under a lease that lapsed (its node
/// died), nobody asked to cancel it, its type is resumable and attempts
/// remain. A run stuck queued, or running without a lease, is failed.
pub fn resumes(run: &Run, spec: Option<&TypeSpec>) -> bool {
    run.state == RunState::Running
        && run.lease.is_some()
        && run.cancel_requested_at.is_none()
        && spec.is_some_and(|s| s.op == run.op_type && s.resumable && run.attempt < s.max_attempts)
}

/// Classifies `run` at `now` (law 6).
pub fn classify(run: &Run, now: Timestamp, thresholds: &Thresholds) -> ProblemClass {
    match terminal_class(run) {
        Some(class) => class,
        None => match stale_at(run, thresholds) {
            Some(at) if now >= at => ProblemClass::ActiveStale,
            _ => ProblemClass::Active,
        },
    }
}

/// The class of a completed run, which never changes again (`None` while
/// active): what the per-day class counters record at completion.
pub fn terminal_class(run: &Run) -> Option<ProblemClass> {
    match run.state {
        RunState::Completed(Outcome::Cancelled) => Some(ProblemClass::Cancelled),
        RunState::Completed(_) if run.reconciliation.is_some() => Some(ProblemClass::Reconciled),
        RunState::Completed(Outcome::Succeeded) => Some(ProblemClass::Ok),
        RunState::Completed(_) => Some(ProblemClass::NeedsFollowUp),
        RunState::Queued | RunState::Running => None,
    }
}

/// The progress deadline of a counted run after a unit finished at `now`:
/// `None` before the first unit or after the last; otherwise
/// `now + max(floor, PROGRESS_INTERVALS × average unit time so far)`.
pub fn progress_deadline(
    started_at: Timestamp,
    now: Timestamp,
    processed: u64,
    total: u64,
    floor: Duration,
) -> Option<Timestamp> {
    if processed == 0 || processed >= total {
        return None;
    }
    let average = now.since(started_at) / u32::try_from(processed).unwrap_or(u32::MAX);
    Some(now.plus(floor.max(average * PROGRESS_INTERVALS)))
}

/// The adaptive running threshold of a type:
/// `max(floor, ADAPTIVE_FACTOR × p95(durations))` over the durations of its
/// recent successful runs, once there are [`ADAPTIVE_MIN_SAMPLES`] of them.
/// Every peer uses one fixed timeout; a type whose runs take two minutes and
/// one whose runs take two hours deserve different patience.
pub fn adaptive_running_max(floor: Duration, durations: &[Duration]) -> Option<Duration> {
    if durations.len() < ADAPTIVE_MIN_SAMPLES {
        return None;
    }
    let mut sorted = durations.to_vec();
    sorted.sort_unstable();
    // nearest-rank p95
    let rank = (sorted.len() * 95).div_ceil(100).max(1);
    let p95 = sorted[rank - 1];
    Some(floor.max(p95 * ADAPTIVE_FACTOR))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::counts::SummaryCounts;
    use crate::ids::RunId;
    use crate::lifecycle::RunStatus;
    use crate::params::Params;
    use crate::run::{Lease, Reconciliation, UnitTally};
    use std::time::Duration;
    use uuid::Uuid;

    pub(crate) fn run_at(state: RunState, created: Timestamp) -> Run {
        Run {
            id: RunId::from_uuid(Uuid::from_u128(7)),
            workspace_id: None,
            tenant_id: None,
            op_type: OperationType::Synthetic,
            identity_key: Some("k".into()),
            params: Params::empty(),
            state,
            initiator: None,
            parent_id: None,
            attempt: 0,
            lease: None,
            heartbeat_at: None,
            available_at: created,
            units: UnitTally::default(),
            phase: None,
            counts: SummaryCounts::new(),
            failures: vec![],
            reason_code: None,
            reconciliation: None,
            cancel_requested_at: None,
            last_progress_at: None,
            progress_stale_at: None,
            claim: None,
            created_at: created,
            started_at: None,
            completed_at: None,
        }
    }

    const T0: Timestamp = Timestamp::from_unix_micros(1_800_000_000_000_000);

    #[test]
    fn only_a_lapsed_lease_of_a_resumable_type_with_attempts_left_resumes() {
        let t0 = Timestamp::from_unix_micros(1_700_000_000_000_000);
        let resumable = TypeSpec {
            resumable: true,
            ..TypeSpec::system(OperationType::Synthetic, crate::catalog::ProgressPlan::Indeterminate)
        };
        let fragile = TypeSpec {
            resumable: false,
            ..resumable
        };
        let mut run = run_at(RunState::Running, t0);
        run.attempt = 1;
        run.lease = Some(Lease {
            owner: "dead/1".into(),
            expires_at: t0,
        });
        assert!(resumes(&run, Some(&resumable)));
        assert!(!resumes(&run, Some(&fragile)), "not resumable");
        assert!(!resumes(&run, None), "no spec in this build");
        let other = TypeSpec {
            op: OperationType::InventorySync,
            ..resumable
        };
        assert!(!resumes(&run, Some(&other)), "another type's spec");
        let last = Run {
            attempt: resumable.max_attempts,
            ..run.clone()
        };
        assert!(!resumes(&last, Some(&resumable)), "no attempt left");
        let cancelling = Run {
            cancel_requested_at: Some(t0),
            ..run.clone()
        };
        assert!(!resumes(&cancelling, Some(&resumable)), "a cancel was asked");
        let leaseless = Run {
            lease: None,
            ..run.clone()
        };
        assert!(!resumes(&leaseless, Some(&resumable)));
        let queued = Run {
            state: RunState::Queued,
            lease: None,
            ..run
        };
        assert!(!resumes(&queued, Some(&resumable)), "stuck queued");
    }

    #[test]
    fn completed_classes() {
        let th = Thresholds::default();
        let c = |o| classify(&run_at(RunState::Completed(o), T0), T0, &th);
        assert_eq!(c(Outcome::Succeeded), ProblemClass::Ok);
        assert_eq!(c(Outcome::Failed), ProblemClass::NeedsFollowUp);
        assert_eq!(c(Outcome::PartiallySucceeded), ProblemClass::NeedsFollowUp);
        assert_eq!(c(Outcome::Blocked), ProblemClass::NeedsFollowUp);
        assert_eq!(c(Outcome::Cancelled), ProblemClass::Cancelled);
        let mut r = run_at(RunState::Completed(Outcome::Failed), T0);
        r.reconciliation = Some(Reconciliation {
            previous_status: RunStatus::Running,
            last_heartbeat_at: None,
            reconciled_at: T0,
        });
        assert_eq!(classify(&r, T0, &th), ProblemClass::Reconciled);
    }

    #[test]
    fn queued_goes_stale_after_its_threshold_from_available_at() {
        let th = Thresholds::default();
        let q = StaleThresholds::DEFAULT.queued;
        let mut r = run_at(RunState::Queued, T0);
        assert_eq!(
            classify(&r, T0.plus(q).minus(Duration::from_micros(1)), &th),
            ProblemClass::Active
        );
        assert_eq!(classify(&r, T0.plus(q), &th), ProblemClass::ActiveStale);
        // a retry due later is not stale just because it was created long ago
        r.available_at = T0.plus(q * 2);
        assert_eq!(classify(&r, T0.plus(q * 2), &th), ProblemClass::Active);
    }

    #[test]
    fn running_goes_stale_on_silence_or_lease_expiry() {
        let th = Thresholds::default();
        let hb = StaleThresholds::DEFAULT.heartbeat;
        let mut r = run_at(RunState::Running, T0);
        r.started_at = Some(T0);
        r.lease = Some(Lease {
            owner: "w".into(),
            expires_at: T0.plus(hb * 10),
        });
        assert_eq!(
            classify(&r, T0.plus(hb).minus(Duration::from_micros(1)), &th),
            ProblemClass::Active
        );
        assert_eq!(classify(&r, T0.plus(hb), &th), ProblemClass::ActiveStale);
        r.heartbeat_at = Some(T0.plus(hb));
        assert_eq!(
            classify(&r, T0.plus(hb), &th),
            ProblemClass::Active,
            "a heartbeat resets silence"
        );
        r.lease = Some(Lease {
            owner: "w".into(),
            expires_at: T0.plus(hb / 2),
        });
        assert_eq!(
            classify(&r, T0.plus(hb / 2), &th),
            ProblemClass::ActiveStale,
            "lease expired"
        );
    }

    #[test]
    fn thresholds_can_be_overridden_per_type() {
        let th = Thresholds::default().with(
            OperationType::Synthetic,
            StaleThresholds {
                queued: Duration::from_secs(1),
                heartbeat: Duration::from_secs(1),
                running_floor: Duration::from_secs(1),
                running_max: None,
            },
        );
        assert_eq!(th.of(OperationType::Synthetic).queued, Duration::from_secs(1));
        assert_eq!(th.of(OperationType::InventorySync), StaleThresholds::DEFAULT);
        let r = run_at(RunState::Queued, T0);
        assert_eq!(
            classify(&r, T0.plus(Duration::from_secs(1)), &th),
            ProblemClass::ActiveStale
        );
        assert_eq!(th.iter().count(), OperationType::ALL.len());
    }

    #[test]
    fn progress_stall_and_duration_make_running_runs_stale_before_the_lease() {
        let th = Thresholds::default();
        let hb = StaleThresholds::DEFAULT.heartbeat;
        let mut r = run_at(RunState::Running, T0);
        r.started_at = Some(T0);
        r.heartbeat_at = Some(T0.plus(hb * 10)); // keeps heartbeating
        r.lease = Some(Lease {
            owner: "w".into(),
            expires_at: T0.plus(hb * 20),
        });
        r.units.total = Some(10);
        r.units.processed = 2;
        // two units in 20 s: 10 s each; five intervals is below the floor
        let d = progress_deadline(T0, T0.plus(Duration::from_secs(20)), 2, 10, hb).unwrap();
        assert_eq!(d, T0.plus(Duration::from_secs(20)).plus(hb));
        r.progress_stale_at = Some(d);
        assert_eq!(
            classify(&r, d.minus(Duration::from_micros(1)), &th),
            ProblemClass::Active
        );
        assert_eq!(classify(&r, d, &th), ProblemClass::ActiveStale);
        assert!(!reconcilable(&r, d, &th), "a live lease is never overruled");
        // slow units: the deadline is five of them
        let slow = progress_deadline(T0, T0.plus(Duration::from_secs(600)), 2, 10, hb).unwrap();
        assert_eq!(slow, T0.plus(Duration::from_secs(600 + 5 * 300)));
        assert_eq!(progress_deadline(T0, T0, 0, 10, hb), None);
        assert_eq!(progress_deadline(T0, T0, 10, 10, hb), None);
        // adaptive duration threshold, for runs without counted progress
        let mut ind = run_at(RunState::Running, T0);
        ind.started_at = Some(T0);
        ind.heartbeat_at = Some(T0.plus(Duration::from_secs(3600)));
        ind.lease = Some(Lease {
            owner: "w".into(),
            expires_at: T0.plus(Duration::from_secs(7200)),
        });
        let th = th.with_running_max(OperationType::Synthetic, Some(Duration::from_secs(900)));
        assert_eq!(
            classify(&ind, T0.plus(Duration::from_secs(899)), &th),
            ProblemClass::Active
        );
        assert_eq!(
            classify(&ind, T0.plus(Duration::from_secs(900)), &th),
            ProblemClass::ActiveStale
        );
    }

    #[test]
    fn reconcilable_runs() {
        let th = Thresholds::default();
        let s = StaleThresholds::DEFAULT;
        let q = run_at(RunState::Queued, T0);
        assert!(!reconcilable(
            &q,
            T0.plus(s.queued).minus(Duration::from_micros(1)),
            &th
        ));
        assert!(reconcilable(&q, T0.plus(s.queued), &th));
        let mut r = run_at(RunState::Running, T0);
        r.started_at = Some(T0);
        r.lease = Some(Lease {
            owner: "w".into(),
            expires_at: T0.plus(Duration::from_secs(10)),
        });
        assert!(!reconcilable(&r, T0.plus(Duration::from_secs(9)), &th));
        assert!(reconcilable(&r, T0.plus(Duration::from_secs(10)), &th));
        r.lease = None;
        assert!(reconcilable(&r, T0.plus(s.heartbeat), &th));
        assert!(!reconcilable(
            &run_at(RunState::Completed(Outcome::Failed), T0),
            T0.plus(s.queued * 9),
            &th
        ));
    }

    #[test]
    fn adaptive_threshold_formula() {
        let floor = Duration::from_secs(300);
        let few: Vec<_> = (0..19).map(|_| Duration::from_secs(1000)).collect();
        assert_eq!(adaptive_running_max(floor, &few), None, "needs 20 samples");
        let mut d: Vec<_> = (1..=100).map(Duration::from_secs).collect();
        assert_eq!(
            adaptive_running_max(floor, &d),
            Some(floor),
            "3 × p95 (95 s) is below the floor"
        );
        d.iter_mut().for_each(|x| *x *= 10);
        assert_eq!(adaptive_running_max(floor, &d), Some(Duration::from_secs(3 * 950)));
    }

    #[test]
    fn names_parse() {
        for c in ProblemClass::ALL {
            assert_eq!(ProblemClass::parse("problem", c.as_str()).unwrap(), c);
        }
        assert_eq!(ProblemClass::parse("problem", "broken").unwrap_err().field, "problem");
    }
}
