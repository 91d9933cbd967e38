//! Law 4 — progress is counted only when it is true.
//!
//! A run shows [`Progress::Counted`] only when it planned a deterministic set
//! of work units (its ledger has a `total`); `processed` never exceeds
//! `total`, and the fraction is clamped to 0–100 % and absent for zero
//! units. Phased runs show "phase k of n"; everything else shows elapsed
//! time. Outcome counters never feed progress.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lifecycle::Outcome;
use crate::run::{Run, UnitTally};
use crate::timestamp::Timestamp;

/// What the progress of a run looks like now.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// Determinate: `processed` of `total` units.
    Counted {
        /// Units in a terminal state (never more than `total`).
        processed: u64,
        /// Planned units.
        total: u64,
    },
    /// Phase `phase` of `phases`.
    Phased {
        /// Current phase, from 1.
        phase: u32,
        /// Number of phases.
        phases: u32,
        /// What this phase does.
        label: String,
    },
    /// Unknown amount of work: time spent so far.
    Indeterminate {
        /// Time since the run started (or was created, while queued), up
        /// to its completion.
        elapsed: Duration,
    },
}

impl Progress {
    /// The fraction done in `0.0..=1.0`, only for counted runs with work.
    pub fn fraction(&self) -> Option<f64> {
        match self {
            Progress::Counted { total: 0, .. } => None,
            Progress::Counted { processed, total } => Some((*processed as f64 / *total as f64).clamp(0.0, 1.0)),
            _ => None,
        }
    }
}

/// The progress of `run` at `now`.
pub fn progress_of(run: &Run, now: Timestamp) -> Progress {
    if let Some(total) = run.units.total {
        return Progress::Counted {
            processed: run.units.processed.min(total),
            total,
        };
    }
    if let Some(p) = &run.phase {
        let phases = p.phases.max(1);
        return Progress::Phased {
            phase: p.phase.clamp(1, phases),
            phases,
            label: p.label.clone(),
        };
    }
    let from = run.started_at.unwrap_or(run.created_at);
    let to = run.completed_at.unwrap_or(now);
    Progress::Indeterminate {
        elapsed: to.since(from),
    }
}

/// The estimated time to finish a counted run, from its recent unit rate:
/// the average time per unit so far times the units left, less the time
/// since the last unit finished. `None` before the first unit, after the
/// last, or for runs that are not counted.
pub fn eta(run: &Run, now: Timestamp) -> Option<Duration> {
    let total = run.units.total?;
    let (started, last) = (run.started_at?, run.last_progress_at?);
    let done = run.units.processed;
    if done == 0 || done >= total || !run.state.is_active() {
        return None;
    }
    let average = last.since(started) / u32::try_from(done).unwrap_or(u32::MAX);
    let left = u32::try_from(total - done).unwrap_or(u32::MAX);
    Some((average * left).saturating_sub(now.since(last)))
}

/// How one work unit ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitOutcome {
    /// Done.
    Succeeded,
    /// Partly done (a child run that partially succeeded).
    PartiallySucceeded,
    /// Not done.
    Failed,
    /// Deliberately not done (nothing to do).
    Skipped,
}

impl UnitOutcome {
    /// Every unit outcome.
    pub const ALL: [UnitOutcome; 4] = [
        UnitOutcome::Succeeded,
        UnitOutcome::PartiallySucceeded,
        UnitOutcome::Failed,
        UnitOutcome::Skipped,
    ];

    /// The stable name stored in the unit ledger.
    pub const fn as_str(self) -> &'static str {
        match self {
            UnitOutcome::Succeeded => "succeeded",
            UnitOutcome::PartiallySucceeded => "partially_succeeded",
            UnitOutcome::Failed => "failed",
            UnitOutcome::Skipped => "skipped",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|u| u.as_str() == s)
    }

    /// The unit outcome a child run's outcome counts as in its parent
    /// (law 11).
    pub const fn of_child(outcome: Outcome) -> UnitOutcome {
        match outcome {
            Outcome::Succeeded => UnitOutcome::Succeeded,
            Outcome::PartiallySucceeded => UnitOutcome::PartiallySucceeded,
            Outcome::Failed | Outcome::Blocked | Outcome::Cancelled => UnitOutcome::Failed,
        }
    }
}

/// The outcome a run earns from its units: all fine → succeeded; nothing
/// fine → failed; otherwise partially succeeded. Skipped units count as
/// fine; zero units is success.
pub fn outcome_from_units(t: &UnitTally) -> Outcome {
    let fine = t.succeeded + t.skipped;
    if t.failed == 0 && t.partial == 0 {
        Outcome::Succeeded
    } else if fine == 0 && t.partial == 0 {
        Outcome::Failed
    } else {
        Outcome::PartiallySucceeded
    }
}

/// Law 11, the parent-completion rule: a running parent whose every child
/// (unit) has ended completes with the outcome its children earned, and
/// with `run.children_failed` unless every child succeeded. `None` while a
/// child is still active, or when the parent no longer runs.
pub fn parent_completion(parent: &Run) -> Option<(Outcome, Option<crate::reason::ReasonCode>)> {
    if parent.state != crate::lifecycle::RunState::Running || !parent.units.all_done() {
        return None;
    }
    let outcome = outcome_from_units(&parent.units);
    let reason = (outcome != Outcome::Succeeded).then_some(crate::reason::ReasonCode::RunChildrenFailed);
    Some((outcome, reason))
}

impl UnitTally {
    /// Records one more unit reaching `outcome`.
    pub fn record(&mut self, outcome: UnitOutcome) {
        self.processed += 1;
        match outcome {
            UnitOutcome::Succeeded => self.succeeded += 1,
            UnitOutcome::PartiallySucceeded => self.partial += 1,
            UnitOutcome::Failed => self.failed += 1,
            UnitOutcome::Skipped => self.skipped += 1,
        }
    }

    /// Whether every planned unit reached a terminal state.
    pub fn all_done(&self) -> bool {
        self.total.is_some_and(|t| self.processed >= t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_parent_completes_once_every_child_ended_with_what_they_earned() {
        use crate::lifecycle::RunState;
        use crate::reason::ReasonCode;
        let mut parent = crate::problem::tests::run_at(RunState::Running, Timestamp::EPOCH);
        parent.units = UnitTally {
            total: Some(3),
            processed: 2,
            succeeded: 2,
            ..UnitTally::default()
        };
        assert_eq!(parent_completion(&parent), None, "a child is still active");
        parent.units.record(UnitOutcome::Succeeded);
        assert_eq!(parent_completion(&parent), Some((Outcome::Succeeded, None)));
        parent.units.succeeded -= 1;
        parent.units.failed += 1;
        assert_eq!(
            parent_completion(&parent),
            Some((Outcome::PartiallySucceeded, Some(ReasonCode::RunChildrenFailed)))
        );
        parent.units.succeeded = 0;
        parent.units.failed = 3;
        assert_eq!(
            parent_completion(&parent),
            Some((Outcome::Failed, Some(ReasonCode::RunChildrenFailed)))
        );
        parent.state = RunState::Completed(Outcome::Cancelled);
        assert_eq!(
            parent_completion(&parent),
            None,
            "a parent no longer running stays as it is"
        );
    }

    #[test]
    fn outcome_rules() {
        let t = |s, p, f, k| UnitTally {
            total: None,
            processed: s + p + f + k,
            succeeded: s,
            partial: p,
            failed: f,
            skipped: k,
        };
        assert_eq!(
            outcome_from_units(&t(0, 0, 0, 0)),
            Outcome::Succeeded,
            "zero units succeed"
        );
        assert_eq!(outcome_from_units(&t(3, 0, 0, 0)), Outcome::Succeeded);
        assert_eq!(outcome_from_units(&t(0, 0, 0, 2)), Outcome::Succeeded, "skips are fine");
        assert_eq!(outcome_from_units(&t(0, 0, 3, 0)), Outcome::Failed);
        assert_eq!(outcome_from_units(&t(2, 0, 1, 0)), Outcome::PartiallySucceeded);
        assert_eq!(outcome_from_units(&t(0, 0, 1, 1)), Outcome::PartiallySucceeded);
        assert_eq!(outcome_from_units(&t(0, 1, 0, 0)), Outcome::PartiallySucceeded);
        assert_eq!(outcome_from_units(&t(0, 1, 5, 0)), Outcome::PartiallySucceeded);
    }

    #[test]
    fn eta_from_the_unit_rate() {
        use crate::lifecycle::RunState;
        use crate::problem::tests::run_at;
        let t0 = Timestamp::from_unix_micros(1_800_000_000_000_000);
        let mut r = run_at(RunState::Running, t0);
        r.started_at = Some(t0);
        r.units = UnitTally {
            total: Some(10),
            processed: 4,
            succeeded: 4,
            ..UnitTally::default()
        };
        assert_eq!(eta(&r, t0), None, "no unit time known yet");
        r.last_progress_at = Some(t0.plus(Duration::from_secs(8)));
        // 2 s per unit, 6 left, 1 s already spent on the next one
        assert_eq!(eta(&r, t0.plus(Duration::from_secs(9))), Some(Duration::from_secs(11)));
        assert_eq!(eta(&r, t0.plus(Duration::from_secs(100))), Some(Duration::ZERO));
        r.units.processed = 10;
        assert_eq!(eta(&r, t0), None);
    }

    #[test]
    fn child_outcomes_map_to_units() {
        assert_eq!(UnitOutcome::of_child(Outcome::Succeeded), UnitOutcome::Succeeded);
        assert_eq!(
            UnitOutcome::of_child(Outcome::PartiallySucceeded),
            UnitOutcome::PartiallySucceeded
        );
        for o in [Outcome::Failed, Outcome::Blocked, Outcome::Cancelled] {
            assert_eq!(UnitOutcome::of_child(o), UnitOutcome::Failed);
        }
    }

    proptest! {
        #[test]
        fn fraction_is_clamped_and_absent_for_zero(processed in 0u64..2000, total in 0u64..1000) {
            let p = Progress::Counted { processed: processed.min(total), total };
            match p.fraction() {
                None => prop_assert_eq!(total, 0),
                Some(f) => prop_assert!((0.0..=1.0).contains(&f)),
            }
        }

        #[test]
        fn recording_keeps_tally_consistent(outcomes in proptest::collection::vec(proptest::sample::select(UnitOutcome::ALL.to_vec()), 0..50)) {
            let mut t = UnitTally { total: Some(outcomes.len() as u64), ..UnitTally::default() };
            for o in &outcomes {
                prop_assert!(!t.all_done());
                t.record(*o);
            }
            prop_assert!(t.all_done());
            prop_assert_eq!(t.processed, t.succeeded + t.partial + t.failed + t.skipped);
            let o = outcome_from_units(&t);
            if outcomes.iter().all(|u| matches!(u, UnitOutcome::Succeeded | UnitOutcome::Skipped)) {
                prop_assert_eq!(o, Outcome::Succeeded);
            }
            if !outcomes.is_empty() && outcomes.iter().all(|u| *u == UnitOutcome::Failed) {
                prop_assert_eq!(o, Outcome::Failed);
            }
        }
    }
}
