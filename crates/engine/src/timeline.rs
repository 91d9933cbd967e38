//! A run's timeline: the events stored for it, and the ones its row and
//! its notifications already record.
//!
//! Part of a run's history is written only where it already lives, not
//! again as timeline rows, because a second write on the hottest path costs
//! throughput (each one is an insert into an indexed table per run):
//!
//! | timeline entry        | where it is recorded                                   |
//! |-----------------------|--------------------------------------------------------|
//! | created               | the run (`created_at`, initiator, parent)              |
//! | claimed, attempt n    | the run (`claimed_by`, `claimed_at`) for the current    |
//! |                       | attempt; the retry or release that ended an earlier    |
//! |                       | attempt carries that attempt's claim in its detail     |
//! | completed             | the run (status, outcome, reason, `completed_at`); a   |
//! |                       | row of its own only when a person completed it         |
//! | reconciled            | the run's reconciliation lineage                       |
//! | notified              | the notifications table (one row per recipient)        |
//!
//! Everything else (joined, units planned, phases, retries, releases,
//! cancel requested, late results) is a stored event. [`assemble`] merges
//! both into one list ordered by time, and at equal times by the order in
//! which those things happen to a run.

use crate::port::RunEvent;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::run::Run;
use tenantatlas_domain::timeline::RunEventKind;

/// Where a kind falls among events recorded at the same instant.
fn rank(kind: RunEventKind) -> u8 {
    match kind {
        RunEventKind::Created => 0,
        RunEventKind::Joined => 1,
        RunEventKind::Claimed => 2,
        RunEventKind::UnitsPlanned | RunEventKind::ChildrenPlanned => 3,
        RunEventKind::PhaseStarted => 4,
        RunEventKind::CancelRequested => 5,
        RunEventKind::RetryScheduled | RunEventKind::Released => 6,
        RunEventKind::Completed => 7,
        RunEventKind::Reconciled => 8,
        RunEventKind::Notified => 9,
        RunEventKind::LateResultIgnored => 10,
    }
}

fn derived(run: &Run, at: Timestamp, kind: RunEventKind, attempt: Option<u32>, detail: serde_json::Value) -> RunEvent {
    RunEvent {
        id: 0,
        run_id: run.id,
        at,
        kind,
        actor_id: None,
        attempt,
        detail,
    }
}

/// The claim an attempt-ending event (retry, release) records.
fn ended_claim(ev: &RunEvent) -> Option<(Timestamp, &str)> {
    if !matches!(ev.kind, RunEventKind::RetryScheduled | RunEventKind::Released) {
        return None;
    }
    let at = ev.detail.get("claimed_at")?.as_str()?;
    let worker = ev.detail.get("worker")?.as_str()?;
    Some((Timestamp::parse_rfc3339("claimed_at", at).ok()?, worker))
}

/// The whole timeline of `run`: its `stored` events (oldest first) and
/// what the run row and its notifications (`notified`: how many, and when
/// the first was written) record. Entries derived from the row have id 0.
pub fn assemble(run: &Run, stored: Vec<RunEvent>, notified: Option<(u32, Timestamp)>) -> Vec<RunEvent> {
    let mut events = Vec::with_capacity(stored.len() + 5);
    let mut created = derived(
        run,
        run.created_at,
        RunEventKind::Created,
        None,
        match run.parent_id {
            Some(p) => serde_json::json!({ "parent_id": p.to_string() }),
            None => serde_json::json!({}),
        },
    );
    created.actor_id = run.initiator.filter(|_| run.parent_id.is_none());
    events.push(created);

    // Claims of attempts that a retry or release ended.
    let mut current_attempt_ended = false;
    for ev in &stored {
        if let Some((at, worker)) = ended_claim(ev) {
            events.push(derived(
                run,
                at,
                RunEventKind::Claimed,
                ev.attempt,
                serde_json::json!({ "worker": worker }),
            ));
        }
        if matches!(ev.kind, RunEventKind::RetryScheduled | RunEventKind::Released) && ev.attempt == Some(run.attempt) {
            current_attempt_ended = true;
        }
    }
    // The current (or last) attempt's claim.
    if let Some(claim) = run.claim.as_ref().filter(|_| run.attempt > 0 && !current_attempt_ended) {
        events.push(derived(
            run,
            claim.at,
            RunEventKind::Claimed,
            Some(run.attempt),
            serde_json::json!({ "worker": claim.worker }),
        ));
    }
    let stored_completion = stored.iter().any(|e| e.kind == RunEventKind::Completed);
    if let (Some(outcome), Some(at), false) = (run.state.outcome(), run.completed_at, stored_completion) {
        events.push(derived(
            run,
            at,
            RunEventKind::Completed,
            (run.attempt > 0).then_some(run.attempt),
            serde_json::json!({ "outcome": outcome.as_str(), "reason_code": run.reason_code.map(|c| c.as_str()) }),
        ));
    }
    if let Some(r) = &run.reconciliation {
        events.push(derived(
            run,
            r.reconciled_at,
            RunEventKind::Reconciled,
            (run.attempt > 0).then_some(run.attempt),
            serde_json::json!({
                "previous_status": r.previous_status.as_str(),
                "last_heartbeat_at": r.last_heartbeat_at.map(|t| t.to_rfc3339()),
            }),
        ));
    }
    if let Some((recipients, at)) = notified {
        events.push(derived(
            run,
            at,
            RunEventKind::Notified,
            None,
            serde_json::json!({ "recipients": recipients }),
        ));
    }
    events.extend(stored);
    // stable: stored events at one instant keep their stored order
    events.sort_by_key(|e| (e.at, rank(e.kind)));
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenantatlas_domain::catalog::OperationType;
    use tenantatlas_domain::ids::{RunId, UserId};
    use tenantatlas_domain::lifecycle::{Outcome, RunState, RunStatus};
    use tenantatlas_domain::params::Params;
    use tenantatlas_domain::run::{Claim, Reconciliation, UnitTally};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_800_000_000_000_000 + s * 1_000_000)
    }

    fn run() -> Run {
        Run {
            id: RunId::from_uuid(uuid::Uuid::from_u128(1)),
            workspace_id: None,
            tenant_id: None,
            op_type: OperationType::Synthetic,
            identity_key: None,
            params: Params::from_stored(&serde_json::json!({})),
            state: RunState::Queued,
            initiator: None,
            parent_id: None,
            attempt: 0,
            lease: None,
            claim: None,
            heartbeat_at: None,
            available_at: t(0),
            units: UnitTally::default(),
            phase: None,
            counts: tenantatlas_domain::counts::SummaryCounts::new(),
            failures: Vec::new(),
            reason_code: None,
            reconciliation: None,
            cancel_requested_at: None,
            last_progress_at: None,
            progress_stale_at: None,
            created_at: t(0),
            started_at: None,
            completed_at: None,
        }
    }

    fn stored(
        run: &Run,
        id: i64,
        at: Timestamp,
        kind: RunEventKind,
        attempt: Option<u32>,
        detail: serde_json::Value,
    ) -> RunEvent {
        RunEvent {
            id,
            run_id: run.id,
            at,
            kind,
            actor_id: None,
            attempt,
            detail,
        }
    }

    fn kinds(events: &[RunEvent]) -> Vec<(RunEventKind, Option<u32>)> {
        events.iter().map(|e| (e.kind, e.attempt)).collect()
    }

    #[test]
    fn a_queued_run_is_only_created() {
        let r = run();
        assert_eq!(kinds(&assemble(&r, vec![], None)), vec![(RunEventKind::Created, None)]);
    }

    #[test]
    fn a_retried_then_completed_run_shows_every_attempt_in_order() {
        let mut r = run();
        r.state = RunState::Completed(Outcome::Succeeded);
        r.attempt = 2;
        r.claim = Some(Claim {
            worker: "n/w2".into(),
            at: t(20),
        });
        r.completed_at = Some(t(30));
        let retry = stored(
            &r,
            7,
            t(10),
            RunEventKind::RetryScheduled,
            Some(1),
            serde_json::json!({ "worker": "n/w1", "claimed_at": t(5).to_rfc3339(), "reason_code": "provider.throttled" }),
        );
        let events = assemble(&r, vec![retry], Some((2, t(30))));
        assert_eq!(
            kinds(&events),
            vec![
                (RunEventKind::Created, None),
                (RunEventKind::Claimed, Some(1)),
                (RunEventKind::RetryScheduled, Some(1)),
                (RunEventKind::Claimed, Some(2)),
                (RunEventKind::Completed, Some(2)),
                (RunEventKind::Notified, None),
            ]
        );
        assert_eq!(events[1].detail["worker"], "n/w1");
        assert_eq!(events[3].detail["worker"], "n/w2");
        assert_eq!(events[4].detail["outcome"], "succeeded");
        assert_eq!(events[5].detail["recipients"], 2);
    }

    #[test]
    fn a_released_run_not_yet_reclaimed_shows_one_claim() {
        let mut r = run();
        r.attempt = 1;
        r.claim = Some(Claim {
            worker: "n/w1".into(),
            at: t(5),
        });
        let release = stored(
            &r,
            3,
            t(9),
            RunEventKind::Released,
            Some(1),
            serde_json::json!({ "worker": "n/w1", "claimed_at": t(5).to_rfc3339() }),
        );
        let events = assemble(&r, vec![release], None);
        assert_eq!(
            kinds(&events),
            vec![
                (RunEventKind::Created, None),
                (RunEventKind::Claimed, Some(1)),
                (RunEventKind::Released, Some(1)),
            ]
        );
    }

    #[test]
    fn a_reconciled_run_and_a_person_who_completed_one() {
        let mut r = run();
        r.state = RunState::Completed(Outcome::Failed);
        r.attempt = 1;
        r.claim = Some(Claim {
            worker: "n/w1".into(),
            at: t(1),
        });
        r.completed_at = Some(t(100));
        r.reconciliation = Some(Reconciliation {
            previous_status: RunStatus::Running,
            last_heartbeat_at: Some(t(2)),
            reconciled_at: t(100),
        });
        let late = stored(
            &r,
            9,
            t(101),
            RunEventKind::LateResultIgnored,
            Some(1),
            serde_json::json!({}),
        );
        assert_eq!(
            kinds(&assemble(&r, vec![late], None)),
            vec![
                (RunEventKind::Created, None),
                (RunEventKind::Claimed, Some(1)),
                (RunEventKind::Completed, Some(1)),
                (RunEventKind::Reconciled, Some(1)),
                (RunEventKind::LateResultIgnored, Some(1)),
            ]
        );

        let mut q = run();
        q.state = RunState::Completed(Outcome::Cancelled);
        q.completed_at = Some(t(3));
        let user = UserId::from_uuid(uuid::Uuid::from_u128(2));
        let mut by_person = stored(&q, 4, t(3), RunEventKind::Completed, None, serde_json::json!({}));
        by_person.actor_id = Some(user);
        let events = assemble(&q, vec![by_person], None);
        assert_eq!(
            kinds(&events),
            vec![(RunEventKind::Created, None), (RunEventKind::Completed, None)]
        );
        assert_eq!(
            events[1].actor_id,
            Some(user),
            "the stored completion, not a derived one"
        );
    }
}
