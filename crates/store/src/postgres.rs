//! PostgreSQL, for production and many nodes: connections, change signals
//! between nodes (`LISTEN`/`NOTIFY`), singleton duties (advisory locks), and
//! the statements whose SQL differs from SQLite's.
//!
//! Batches are written with `UNNEST` (one statement per table for a whole
//! batch of starts, unit results or completions: the text never changes
//! with the batch size, so it stays prepared). Row locks order concurrent
//! writers: a join takes `FOR SHARE` on the active twin so its completion
//! waits for the new subscriber; progress writes lock their run
//! `FOR UPDATE` to fence stale attempts; claims skip locked rows. Batch
//! inserts are sorted by identity so concurrent batches take unique-index
//! locks in one order; a deadlock that still happens is retried.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::ids::RunId;
use tenantatlas_domain::progress::UnitOutcome;
use tenantatlas_domain::run::Run;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::error::{Result, StoreError};
use crate::model::{NewEvent, NewRun, Signal, StartRecord, UnitResult};
use crate::rows::{self, RUN_COLUMNS};
use crate::{Pools, SqlStore, new_uuid};

/// How long a caller waits for a connection before the store answers that
/// the database is unavailable. Short, so that a database outage is told
/// at once (the hub answers 503 within two seconds) instead of holding
/// every request; a healthy pool hands out connections in microseconds,
/// and workers retry their writes with backoff anyway.
const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1_500);

pub(crate) async fn connect(opts: PgConnectOptions, max_connections: u32) -> Result<SqlStore> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(opts)
        .await?;
    let (signals, _) = broadcast::channel(1024);
    Ok(SqlStore {
        pools: Pools::Pg(pool),
        signals,
        listening: Arc::default(),
        _watcher: None,
        file: None,
    })
}

/// Whether PostgreSQL aborted the transaction to break a deadlock or a
/// serialization conflict (safe to retry as a whole).
pub(crate) fn is_retryable_conflict(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(d)) => {
            matches!(d.code().as_deref(), Some("40P01" | "40001"))
        }
        _ => false,
    }
}

/// Runs `attempt` again while PostgreSQL aborts it to break a deadlock (or,
/// with `identity`, while a concurrent start wins an identity between the
/// twin lookup and the insert: the retry finds that run and joins it).
pub(crate) async fn retrying<T, F>(tries: u32, identity: bool, mut attempt: impl FnMut() -> F) -> Result<T>
where
    F: std::future::Future<Output = Result<T>>,
{
    let mut n = 0;
    loop {
        match attempt().await {
            Err(e) if (is_retryable_conflict(&e) || (identity && is_identity_conflict(&e))) && n < tries => n += 1,
            other => return other,
        }
    }
}

/// Announces a change to every node; delivered when the transaction
/// commits (and coalesced by PostgreSQL within it).
pub(crate) async fn notify(conn: &mut PgConnection, s: &Signal) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(crate::signal::CHANNEL)
        .bind(crate::signal::encode(s))
        .execute(conn)
        .await?;
    Ok(())
}

/// Forwards NOTIFY payloads to this node's listeners; after a lost and
/// re-established connection it announces "anything may have changed".
pub(crate) async fn listen(pool: PgPool, tx: broadcast::Sender<Signal>) {
    loop {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut l) => {
                if l.listen(crate::signal::CHANNEL).await.is_ok() {
                    let _ = tx.send(Signal::RunsChanged(Vec::new()));
                    let _ = tx.send(Signal::Wake);
                    loop {
                        match l.try_recv().await {
                            Ok(Some(n)) => {
                                if let Some(sig) = crate::signal::decode(n.payload()) {
                                    let _ = tx.send(sig);
                                }
                            }
                            // reconnected: notifications may have been lost
                            Ok(None) => {
                                tracing::info!("the PostgreSQL notification channel reconnected");
                                let _ = tx.send(Signal::RunsChanged(Vec::new()));
                                let _ = tx.send(Signal::Wake);
                            }
                            Err(e) => {
                                if !pool.is_closed() {
                                    tracing::warn!(error = %e, "lost the PostgreSQL notification channel; reconnecting");
                                }
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for PostgreSQL notifications; retrying"),
        }
        if pool.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Tries to take the advisory lock of a singleton duty on a connection of
/// its own (released when that connection closes).
pub(crate) async fn try_singleton(
    pool: &PgPool,
    name: &str,
) -> Result<Option<tenantatlas_engine::port::SingletonGuard>> {
    let mut conn = pool.acquire().await?.detach();
    // a stable 64-bit key per duty name
    let key: i64 = sqlx::query_scalar("SELECT hashtextextended($1, 0)")
        .bind(format!("tenantatlas:{name}"))
        .fetch_one(&mut conn)
        .await?;
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut conn)
        .await?;
    Ok(held.then(|| Box::new(crate::HeldDuty(Some(conn))) as tenantatlas_engine::port::SingletonGuard))
}

pub(crate) fn int4(n: Option<u32>) -> Option<i32> {
    n.map(|n| i32::try_from(n).unwrap_or(i32::MAX))
}

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
pub(crate) async fn insert_runs(
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
pub(crate) fn is_identity_conflict(e: &StoreError) -> bool {
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

/// Joins active twins and inserts the rest, inside the caller's
/// transaction.
pub(crate) async fn start_in(tx: &mut PgConnection, batch: &[NewRun], now: Timestamp) -> Result<Vec<StartRecord>> {
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

/// Writes pending units of `run` (with the child run each stands for, on
/// a fan-out).
pub(crate) async fn insert_units(
    c: &mut PgConnection,
    run: RunId,
    units: &[(String, Option<RunId>)],
    now: Timestamp,
) -> Result<()> {
    let keys: Vec<&str> = units.iter().map(|(k, _)| k.as_str()).collect();
    let children: Vec<Option<Uuid>> = units.iter().map(|(_, c)| c.map(|c| c.as_uuid())).collect();
    sqlx::query(
        "INSERT INTO operation_units (run_id, unit_key, state, child_run_id, updated_at) \
         SELECT $1, k, 'pending', c, $2 FROM UNNEST($3::text[], $4::uuid[]) AS u(k, c)",
    )
    .bind(run.as_uuid())
    .bind(now.to_datetime())
    .bind(&keys)
    .bind(&children)
    .execute(c)
    .await?;
    Ok(())
}

/// Moves pending units to their results in one statement; answers the
/// outcome of each unit that moved.
pub(crate) async fn mark_units(
    c: &mut PgConnection,
    run: RunId,
    results: &[&UnitResult],
    now: Timestamp,
) -> Result<Vec<UnitOutcome>> {
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
    .fetch_all(c)
    .await?;
    Ok(done.iter().filter_map(|s| UnitOutcome::parse(s)).collect())
}

/// Adds to the per-day class counters. The shard comes from the batch
/// (`shard_of`), so concurrent batches mostly touch different rows; rows
/// are written in key order, so two batches on one shard do not deadlock.
pub(crate) async fn add_class_counts(
    c: &mut PgConnection,
    deltas: &[(Uuid, Uuid, i64, &'static str, i64)],
    shard_of: RunId,
) -> Result<()> {
    let shard = i16::from(shard_of.as_uuid().as_bytes()[15] % 16);
    let (mut ws, mut ts, mut days, mut classes, mut ns) = (vec![], vec![], vec![], vec![], vec![]);
    for (w, t, day, class, n) in deltas {
        ws.push(*w);
        ts.push(*t);
        days.push(i32::try_from(*day).unwrap_or(i32::MAX));
        classes.push(*class);
        ns.push(*n);
    }
    sqlx::query(
        "INSERT INTO run_class_counts (workspace_id, tenant_id, day, class, shard, n) \
         SELECT w, t, d, c, $6, n FROM UNNEST($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::int8[]) AS u(w, t, d, c, n) \
         ON CONFLICT (tenant_id, day, class, shard) DO UPDATE SET n = run_class_counts.n + excluded.n",
    )
    .bind(&ws)
    .bind(&ts)
    .bind(&days)
    .bind(&classes)
    .bind(&ns)
    .bind(shard)
    .execute(c)
    .await?;
    Ok(())
}

/// Writes timeline entries in one statement.
pub(crate) async fn insert_events(c: &mut PgConnection, events: &[NewEvent]) -> Result<()> {
    let runs: Vec<Uuid> = events.iter().map(|e| e.run_id.as_uuid()).collect();
    let ats: Vec<time::OffsetDateTime> = events.iter().map(|e| e.at.to_datetime()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let actors: Vec<Option<Uuid>> = events.iter().map(|e| e.actor_id.map(|a| a.as_uuid())).collect();
    let attempts: Vec<Option<i32>> = events.iter().map(|e| int4(e.attempt)).collect();
    let details: Vec<String> = events.iter().map(|e| e.detail.to_string()).collect();
    sqlx::query(
        "INSERT INTO run_events (run_id, at, kind, actor_id, attempt, detail) \
         SELECT r, a, k, u, n, d::jsonb FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::uuid[], $5::int[], $6::text[]) AS e(r, a, k, u, n, d)",
    )
    .bind(&runs)
    .bind(&ats)
    .bind(&kinds)
    .bind(&actors)
    .bind(&attempts)
    .bind(&details)
    .execute(c)
    .await?;
    Ok(())
}
