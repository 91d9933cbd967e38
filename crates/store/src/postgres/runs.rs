//! Starting runs and recording their progress on PostgreSQL. Nothing here
//! writes `status` or `outcome` (law 1): that is `lifecycle.rs`'s alone.

use std::collections::{HashMap, HashSet};

use sqlx::postgres::PgConnection;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::ids::RunId;
use tenantatlas_domain::lifecycle::RunStatus;
use tenantatlas_domain::run::Run;
use tenantatlas_domain::timeline::RunEventKind;
use uuid::Uuid;

use super::{PgStore, fetch_run, insert_audit, insert_event, notify};
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::new_uuid;
use crate::rows::{self, RUN_COLUMNS};

type Identity = (Option<Uuid>, Option<Uuid>, &'static str, String);

fn identity_of(new: &NewRun, key: &str) -> Identity {
    (
        new.workspace_id.map(|w| w.as_uuid()),
        new.tenant_id.map(|t| t.as_uuid()),
        new.op_type.as_str(),
        key.to_owned(),
    )
}

/// Inserts queued runs in one statement. A run whose identity an active run
/// holds makes the statement fail with a unique violation on law 2's index
/// (the caller looked for twins first, so that means a concurrent start
/// won the race; the whole start is then retried).
async fn insert_runs(
    conn: &mut PgConnection,
    rows: &[(RunId, &NewRun, Option<&str>)],
    parent: Option<RunId>,
    now: Timestamp,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0.as_uuid()).collect();
    let ws: Vec<Option<Uuid>> = rows.iter().map(|r| r.1.workspace_id.map(|w| w.as_uuid())).collect();
    let tenants: Vec<Option<Uuid>> = rows.iter().map(|r| r.1.tenant_id.map(|t| t.as_uuid())).collect();
    let types: Vec<&str> = rows.iter().map(|r| r.1.op_type.as_str()).collect();
    let keys: Vec<Option<&str>> = rows.iter().map(|r| r.2).collect();
    let params: Vec<String> = rows.iter().map(|r| r.1.params.to_json().to_string()).collect();
    let initiators: Vec<Option<Uuid>> = rows.iter().map(|r| r.1.initiator.map(|u| u.as_uuid())).collect();
    let available: Vec<time::OffsetDateTime> = rows.iter().map(|r| r.1.available_at.to_datetime()).collect();
    sqlx::query(
        "INSERT INTO operation_runs (id, workspace_id, tenant_id, type, identity_key, params, status, initiator_id, parent_id, \
         available_at, created_at, updated_at) \
         SELECT u_id, u_ws, u_tenant, u_type, u_key, u_params::jsonb, 'queued', u_initiator, $9, u_available, $10, $10 \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::uuid[], $8::timestamptz[]) \
         AS u(u_id, u_ws, u_tenant, u_type, u_key, u_params, u_initiator, u_available)",
    )
    .bind(&ids)
    .bind(&ws)
    .bind(&tenants)
    .bind(&types)
    .bind(&keys)
    .bind(&params)
    .bind(&initiators)
    .bind(&available)
    .bind(parent.map(|p| p.as_uuid()))
    .bind(now.to_datetime())
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether `e` is law 2's unique index refusing a second active run.
pub(super) fn is_identity_conflict(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(d)) => {
            d.is_unique_violation()
                && matches!(
                    d.constraint(),
                    Some("ux_runs_active_identity" | "ux_runs_active_system_identity")
                )
        }
        _ => false,
    }
}

/// The active runs holding these identities, locked `FOR SHARE` so that
/// their completion waits for this transaction's new subscribers.
async fn active_twins(conn: &mut PgConnection, wanted: &[Identity]) -> Result<HashMap<Identity, Run>> {
    let mut out = HashMap::new();
    let (tenant_scoped, system): (Vec<&Identity>, Vec<&Identity>) = wanted.iter().partition(|i| i.1.is_some());
    if !tenant_scoped.is_empty() {
        let ws: Vec<Option<Uuid>> = tenant_scoped.iter().map(|i| i.0).collect();
        let tenants: Vec<Option<Uuid>> = tenant_scoped.iter().map(|i| i.1).collect();
        let types: Vec<&str> = tenant_scoped.iter().map(|i| i.2).collect();
        let keys: Vec<&str> = tenant_scoped.iter().map(|i| i.3.as_str()).collect();
        let found = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM operation_runs r \
             JOIN UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS u(u_ws, u_tenant, u_type, u_key) \
             ON r.workspace_id = u.u_ws AND r.tenant_id = u.u_tenant AND r.type = u.u_type AND r.identity_key = u.u_key \
             WHERE r.active AND r.tenant_id IS NOT NULL AND r.identity_key IS NOT NULL \
             FOR SHARE OF r"
        ))
        .bind(&ws)
        .bind(&tenants)
        .bind(&types)
        .bind(&keys)
        .fetch_all(&mut *conn)
        .await?;
        for row in &found {
            let run = rows::run_from_row(row)?;
            if let Some(key) = run.identity_key.clone() {
                let id = (
                    run.workspace_id.map(|w| w.as_uuid()),
                    run.tenant_id.map(|t| t.as_uuid()),
                    run.op_type.as_str(),
                    key,
                );
                out.insert(id, run);
            }
        }
    }
    for i in system {
        let found = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM operation_runs WHERE tenant_id IS NULL AND type = $1 AND identity_key = $2 \
             AND active FOR SHARE"
        ))
        .bind(i.2)
        .bind(&i.3)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = found {
            out.insert(i.clone(), rows::run_from_row(&row)?);
        }
    }
    Ok(out)
}

/// One attempt at a batch start: join the active twins, insert the rest.
pub(super) async fn start_runs(s: &PgStore, batch: &[NewRun], now: Timestamp) -> Result<Vec<StartRecord>> {
    let mut tx = s.begin().await?;
    let records = start_in(&mut tx, batch, now).await?;
    notify(&mut tx, &Signal::Wake).await?;
    let tenants: HashSet<_> = batch.iter().map(|n| n.tenant_id).collect();
    notify(&mut tx, &Signal::RunsChanged(tenants.into_iter().collect())).await?;
    tx.commit().await?;
    Ok(records)
}

/// Joins active twins and inserts the rest, inside the caller's
/// transaction.
pub(super) async fn start_in(tx: &mut PgConnection, batch: &[NewRun], now: Timestamp) -> Result<Vec<StartRecord>> {
    let prepared: Vec<(RunId, Option<String>)> = batch
        .iter()
        .map(|new| (RunId::from_uuid(new_uuid()), rows::identity_key_of(&new.identity, None)))
        .collect();
    // One leader per identity; the rest of the batch joins it.
    let mut leader_of: HashMap<Identity, usize> = HashMap::new();
    let mut follows: Vec<Option<usize>> = vec![None; batch.len()];
    for (i, (_, key)) in prepared.iter().enumerate() {
        if let Some(k) = key {
            match leader_of.entry(identity_of(&batch[i], k)) {
                std::collections::hash_map::Entry::Occupied(e) => follows[i] = Some(*e.get()),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(i);
                }
            }
        }
    }
    // Sorted so that concurrent batches lock identities in one order.
    let mut wanted: Vec<Identity> = leader_of.keys().cloned().collect();
    wanted.sort();
    let twins = active_twins(&mut *tx, &wanted).await?;
    let twin_of = |i: usize| -> Option<&Run> {
        let key = prepared[i].1.as_deref()?;
        twins.get(&identity_of(&batch[i], key))
    };
    let mut inserts: Vec<(RunId, &NewRun, Option<&str>)> = Vec::new();
    for (i, new) in batch.iter().enumerate() {
        if follows[i].is_none() && twin_of(i).is_none() {
            inserts.push((prepared[i].0, new, prepared[i].1.as_deref()));
        }
    }
    inserts.sort_by(|a, b| (a.1.tenant_id, a.1.op_type.as_str(), a.2).cmp(&(b.1.tenant_id, b.1.op_type.as_str(), b.2)));
    insert_runs(&mut *tx, &inserts, None, now).await?;

    let mut records = Vec::with_capacity(batch.len());
    for (i, new) in batch.iter().enumerate() {
        let leader = follows[i].unwrap_or(i);
        let rec = match twin_of(leader) {
            Some(twin) => StartRecord {
                run: twin.clone(),
                joined: true,
            },
            None if leader == i => StartRecord {
                run: rows::fresh_run(prepared[i].0, new, prepared[i].1.clone(), None, now),
                joined: false,
            },
            None => StartRecord {
                run: rows::fresh_run(
                    prepared[leader].0,
                    &batch[leader],
                    prepared[leader].1.clone(),
                    None,
                    now,
                ),
                joined: true,
            },
        };
        records.push(rec);
    }

    // Subscribers (starting users) and "joined" timeline entries ("created"
    // is not written: the run row is its record).
    let mut sub_runs = Vec::new();
    let mut sub_users = Vec::new();
    let mut sub_via = Vec::new();
    let mut ev_runs = Vec::new();
    let mut ev_actors = Vec::new();
    for (rec, new) in records.iter().zip(batch) {
        if let Some(u) = new.initiator {
            sub_runs.push(rec.run.id.as_uuid());
            sub_users.push(u.as_uuid());
            sub_via.push(if rec.joined { "joined" } else { "started" });
        }
        if rec.joined {
            ev_runs.push(rec.run.id.as_uuid());
            ev_actors.push(new.initiator.map(|u| u.as_uuid()));
        }
    }
    if !sub_runs.is_empty() {
        sqlx::query(
            "INSERT INTO run_subscribers (run_id, user_id, via, created_at) \
             SELECT r, u, v, $4 FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) AS s(r, u, v) ON CONFLICT DO NOTHING",
        )
        .bind(&sub_runs)
        .bind(&sub_users)
        .bind(&sub_via)
        .bind(now.to_datetime())
        .execute(&mut *tx)
        .await?;
    }
    if !ev_runs.is_empty() {
        sqlx::query(
            "INSERT INTO run_events (run_id, at, kind, actor_id, detail) \
             SELECT r, $3, 'joined', a, '{}'::jsonb FROM UNNEST($1::uuid[], $2::uuid[]) AS e(r, a)",
        )
        .bind(&ev_runs)
        .bind(&ev_actors)
        .bind(now.to_datetime())
        .execute(&mut *tx)
        .await?;
    }
    Ok(records)
}

/// Locks the run and checks it is running under `attempt`; otherwise
/// records the late write on the timeline.
async fn fenced(conn: &mut PgConnection, run: RunId, attempt: u32, what: &str, now: Timestamp) -> Result<Option<Run>> {
    let current = fetch_run(conn, run, true).await?;
    match &current {
        Some(r) if r.state.status() == RunStatus::Running && r.attempt == attempt => Ok(current),
        Some(r) => {
            insert_event(
                conn,
                run,
                RunEventKind::LateResultIgnored,
                None,
                Some(attempt),
                serde_json::json!({ "write": what, "status": r.state.status().as_str(), "current_attempt": r.attempt }),
                now,
            )
            .await?;
            Ok(None)
        }
        None => Err(StoreError::NotFound(format!("run {run} does not exist"))),
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) async fn plan_units(
    s: &PgStore,
    run: RunId,
    attempt: u32,
    keys: &[String],
    now: Timestamp,
) -> Result<PlanApplied> {
    let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut tx = s.begin().await?;
    let Some(current) = fenced(&mut tx, run, attempt, "plan_units", now).await? else {
        tx.commit().await?;
        return Ok(PlanApplied::Fenced);
    };
    if let Some(total) = current.units.total {
        tx.commit().await?;
        return Ok(PlanApplied::AlreadyPlanned { total });
    }
    let total = keys.len() as u64;
    sqlx::query("UPDATE operation_runs SET units_total = $1, updated_at = $2 WHERE id = $3 AND units_total IS NULL")
        .bind(count(total))
        .bind(now.to_datetime())
        .bind(run.as_uuid())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO operation_units (run_id, unit_key, state, updated_at) SELECT $1, k, 'pending', $2 FROM UNNEST($3::text[]) AS k",
    )
    .bind(run.as_uuid())
    .bind(now.to_datetime())
    .bind(&keys)
    .execute(&mut *tx)
    .await?;
    insert_event(
        &mut tx,
        run,
        RunEventKind::UnitsPlanned,
        None,
        Some(attempt),
        serde_json::json!({ "total": total }),
        now,
    )
    .await?;
    notify(&mut tx, &Signal::RunsChanged(vec![current.tenant_id])).await?;
    tx.commit().await?;
    Ok(PlanApplied::Planned { total })
}

pub(super) async fn complete_units(
    s: &PgStore,
    run: RunId,
    attempt: u32,
    results: &[UnitResult],
    now: Timestamp,
) -> Result<UnitsApplied> {
    // The first result for a key wins; later duplicates in the batch are
    // no-ops exactly as a later batch would be.
    let mut seen = HashSet::new();
    let results: Vec<&UnitResult> = results.iter().filter(|r| seen.insert(r.unit_key.as_str())).collect();
    let keys: Vec<&str> = results.iter().map(|r| r.unit_key.as_str()).collect();
    let states: Vec<&str> = results.iter().map(|r| r.outcome.as_str()).collect();
    let codes: Vec<Option<&str>> = results
        .iter()
        .map(|r| r.failure.as_ref().map(|f| f.reason_code.as_str()))
        .collect();
    let messages: Vec<Option<&str>> = results
        .iter()
        .map(|r| r.failure.as_ref().map(|f| f.message.as_str()))
        .collect();

    let mut tx = s.begin().await?;
    let Some(current) = fenced(&mut tx, run, attempt, "complete_units", now).await? else {
        tx.commit().await?;
        return Ok(UnitsApplied::Fenced);
    };
    let done: Vec<String> = sqlx::query_scalar(
        "UPDATE operation_units u SET state = r.st, reason_code = r.rc, message = r.msg, attempts = u.attempts + 1, updated_at = $6 \
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[]) AS r(k, st, rc, msg) \
         WHERE u.run_id = $1 AND u.unit_key = r.k AND u.state = 'pending' RETURNING u.state",
    )
    .bind(run.as_uuid())
    .bind(&keys)
    .bind(&states)
    .bind(&codes)
    .bind(&messages)
    .bind(now.to_datetime())
    .fetch_all(&mut *tx)
    .await?;
    let mut tally = tenantatlas_domain::run::UnitTally::default();
    for state in &done {
        if let Some(o) = tenantatlas_domain::progress::UnitOutcome::parse(state) {
            tally.record(o);
        }
    }
    if tally.processed == 0 {
        tx.commit().await?;
        return Ok(UnitsApplied::Counted {
            counted: 0,
            processed: current.units.processed,
            total: current.units.total,
        });
    }
    let deadline = rows::progress_deadline_of(&current, current.units.processed + tally.processed, now);
    let row: (i64, Option<i64>) = sqlx::query_as(
        "UPDATE operation_runs SET units_processed = units_processed + $1, units_succeeded = units_succeeded + $2, \
         units_partial = units_partial + $3, units_failed = units_failed + $4, units_skipped = units_skipped + $5, \
         last_progress_at = $6, progress_stale_at = $7, updated_at = $6 \
         WHERE id = $8 RETURNING units_processed, units_total",
    )
    .bind(count(tally.processed))
    .bind(count(tally.succeeded))
    .bind(count(tally.partial))
    .bind(count(tally.failed))
    .bind(count(tally.skipped))
    .bind(now.to_datetime())
    .bind(deadline.map(Timestamp::to_datetime))
    .bind(run.as_uuid())
    .fetch_one(&mut *tx)
    .await?;
    notify(&mut tx, &Signal::RunsChanged(vec![current.tenant_id])).await?;
    tx.commit().await?;
    Ok(UnitsApplied::Counted {
        counted: tally.processed,
        processed: u64::try_from(row.0).unwrap_or(0),
        total: row.1.and_then(|t| u64::try_from(t).ok()),
    })
}

pub(super) async fn fan_out(
    s: &PgStore,
    parent: RunId,
    attempt: u32,
    children: &[NewRun],
    now: Timestamp,
) -> Result<PlanApplied> {
    let mut tx = s.begin().await?;
    let Some(current) = fenced(&mut tx, parent, attempt, "fan_out", now).await? else {
        tx.commit().await?;
        return Ok(PlanApplied::Fenced);
    };
    if let Some(total) = current.units.total {
        tx.commit().await?;
        return Ok(PlanApplied::AlreadyPlanned { total });
    }
    let total = children.len() as u64;
    sqlx::query("UPDATE operation_runs SET units_total = $1, updated_at = $2 WHERE id = $3 AND units_total IS NULL")
        .bind(count(total))
        .bind(now.to_datetime())
        .bind(parent.as_uuid())
        .execute(&mut *tx)
        .await?;
    let prepared: Vec<(RunId, Option<String>)> = children
        .iter()
        .map(|c| {
            (
                RunId::from_uuid(new_uuid()),
                rows::identity_key_of(&c.identity, Some(parent)),
            )
        })
        .collect();
    let rows_in: Vec<(RunId, &NewRun, Option<&str>)> = prepared
        .iter()
        .zip(children)
        .map(|((id, key), c)| (*id, c, key.as_deref()))
        .collect();
    insert_runs(&mut tx, &rows_in, Some(parent), now).await.map_err(|e| {
        if is_identity_conflict(&e) {
            StoreError::Conflict(format!("two children of run {parent} share an identity"))
        } else {
            e
        }
    })?;
    let ids: Vec<Uuid> = prepared.iter().map(|(id, _)| id.as_uuid()).collect();
    let keys: Vec<String> = prepared.iter().map(|(id, _)| id.to_string()).collect();
    sqlx::query(
        "INSERT INTO operation_units (run_id, unit_key, state, child_run_id, updated_at) \
         SELECT $1, k, 'pending', c, $2 FROM UNNEST($3::text[], $4::uuid[]) AS u(k, c)",
    )
    .bind(parent.as_uuid())
    .bind(now.to_datetime())
    .bind(&keys)
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    insert_event(
        &mut tx,
        parent,
        RunEventKind::ChildrenPlanned,
        None,
        Some(attempt),
        serde_json::json!({ "total": total }),
        now,
    )
    .await?;
    notify(&mut tx, &Signal::Wake).await?;
    notify(&mut tx, &Signal::RunsChanged(vec![current.tenant_id])).await?;
    tx.commit().await?;
    Ok(PlanApplied::Planned { total })
}

pub(super) async fn set_phase(
    s: &PgStore,
    run: RunId,
    attempt: u32,
    phase: u32,
    phases: u32,
    label: &str,
    now: Timestamp,
) -> Result<bool> {
    let mut tx = s.begin().await?;
    let Some(current) = fenced(&mut tx, run, attempt, "set_phase", now).await? else {
        tx.commit().await?;
        return Ok(false);
    };
    sqlx::query("UPDATE operation_runs SET phase = $1, phases = $2, phase_label = $3, updated_at = $4 WHERE id = $5")
        .bind(i32::try_from(phase).unwrap_or(i32::MAX))
        .bind(i32::try_from(phases).unwrap_or(i32::MAX))
        .bind(label)
        .bind(now.to_datetime())
        .bind(run.as_uuid())
        .execute(&mut *tx)
        .await?;
    insert_event(
        &mut tx,
        run,
        RunEventKind::PhaseStarted,
        None,
        Some(attempt),
        serde_json::json!({ "phase": phase, "phases": phases, "label": label }),
        now,
    )
    .await?;
    notify(&mut tx, &Signal::RunsChanged(vec![current.tenant_id])).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn add_counts(s: &PgStore, w: &CountsWrite, now: Timestamp) -> Result<bool> {
    let mut tx = s.begin().await?;
    let Some(current) = fenced(&mut tx, w.run_id, w.attempt, "add_counts", now).await? else {
        tx.commit().await?;
        return Ok(false);
    };
    let tenant = current.tenant_id;
    let mut counts = current.counts;
    counts.add(&w.counts);
    sqlx::query("UPDATE operation_runs SET counts = $1, updated_at = $2 WHERE id = $3")
        .bind(sqlx::types::Json(counts.to_json()))
        .bind(now.to_datetime())
        .bind(w.run_id.as_uuid())
        .execute(&mut *tx)
        .await?;
    notify(&mut tx, &Signal::RunsChanged(vec![tenant])).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn request_cancel(
    s: &PgStore,
    run: RunId,
    actor: Actor,
    audit: Option<&AuditEntry>,
    now: Timestamp,
) -> Result<bool> {
    let mut tx = s.begin().await?;
    let done = sqlx::query(
        "UPDATE operation_runs SET cancel_requested_at = COALESCE(cancel_requested_at, $1), updated_at = $1 WHERE id = $2 AND status = 'running'",
    )
    .bind(now.to_datetime())
    .bind(run.as_uuid())
    .execute(&mut *tx)
    .await?;
    let applied = done.rows_affected() == 1;
    if applied {
        insert_event(
            &mut tx,
            run,
            RunEventKind::CancelRequested,
            actor.user_id(),
            None,
            serde_json::json!({ "by": actor.kind() }),
            now,
        )
        .await?;
        if let Some(a) = audit {
            insert_audit(&mut tx, a).await?;
        }
        notify(&mut tx, &Signal::RunsChanged(Vec::new())).await?;
    }
    tx.commit().await?;
    Ok(applied)
}

pub(super) async fn heartbeat(
    s: &PgStore,
    run: RunId,
    attempt: u32,
    lease_until: Timestamp,
    now: Timestamp,
) -> Result<HeartbeatAck> {
    let row: Option<(Option<time::OffsetDateTime>,)> = sqlx::query_as(
        "UPDATE operation_runs SET heartbeat_at = $1, lease_expires_at = $2, updated_at = $1 \
         WHERE id = $3 AND status = 'running' AND attempt = $4 RETURNING cancel_requested_at",
    )
    .bind(now.to_datetime())
    .bind(lease_until.to_datetime())
    .bind(run.as_uuid())
    .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
    .fetch_optional(s.pool())
    .await?;
    Ok(match row {
        Some((cancel,)) => HeartbeatAck::Extended {
            cancel_requested: cancel.is_some(),
        },
        None => HeartbeatAck::Fenced,
    })
}
