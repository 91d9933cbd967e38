//! SQLite, the embedded default: connections, change signals between
//! processes, and the batch statements whose SQL differs from PostgreSQL's.
//!
//! One file in WAL mode. All writes go through a single writer connection
//! and open with `BEGIN IMMEDIATE`, so a write transaction holds the write
//! lock from its first statement (no lock-upgrade deadlocks, no "database is
//! locked" surprises between processes, which wait up to the busy timeout).
//! Reads use a small pool of read-only connections. `synchronous = NORMAL`
//! (the WAL recommendation): a committed transaction survives a process
//! crash; an operating-system crash may lose the last few commits, never
//! consistency.
//!
//! Batches are written as multi-row `VALUES` in chunks: sqlx runs each
//! SQLite statement on the connection's worker thread, so one statement per
//! row would cost a thread hop per row. Binding goes through the shared
//! [`Q`], so the encoding is the one of every other statement.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::ids::{RunId, UserId};
use tenantatlas_domain::run::Run;
use tenantatlas_domain::timeline::RunEventKind;
use tokio::sync::broadcast;

use crate::db::{Arg, Conn, Q, q};
use crate::error::{Result, StoreError};
use crate::model::{NewEvent, NewRun, Signal, StartRecord};
use crate::rows::{self, RUN_COLUMNS, RowExt as _};
use crate::{Pools, SqlStore, new_uuid};

/// How often a process looks for commits made by other processes on the
/// same file (a `worker` beside a `serve`, the command line): SQLite has no
/// notifications between processes, but `PRAGMA data_version` changes when
/// another connection commits.
pub const OTHER_PROCESS_POLL: Duration = Duration::from_millis(25);

/// Rows per multi-row statement (within SQLite's 32,766 parameters; fewer,
/// larger statements measured 20 % faster on a batch start of 20,000 than
/// chunks of 100).
pub(crate) const CHUNK: usize = 250;

/// Stops the watcher when the last clone of the store goes.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Turns other processes' commits into wake-ups and change events. It asks
/// the writer connection, which sees every commit but its own — and this
/// process's own commits are signalled where they are made.
fn watch_other_processes(writer: SqlitePool, signals: broadcast::Sender<Signal>) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let mut last: Option<i64> = None;
        let mut tick = tokio::time::interval(OTHER_PROCESS_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            if writer.is_closed() {
                return;
            }
            let Ok(v) = sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                .fetch_one(&writer)
                .await
            else {
                continue;
            };
            if last.is_some_and(|l| l != v) {
                let _ = signals.send(Signal::Wake);
                let _ = signals.send(Signal::RunsChanged(Vec::new()));
            }
            last = Some(v);
        }
    }))
}

/// The database file an URL opens, as an absolute path (so that a later
/// change of working directory does not move what is beside it); `None` for
/// an in-memory database.
fn database_file(url: &str, opts: &SqliteConnectOptions) -> Option<std::path::PathBuf> {
    let name = opts.get_filename();
    let text = name.to_string_lossy();
    // sqlx names an in-memory database `:memory:` or `file:sqlx-in-memory-N`
    if text == ":memory:" || text.starts_with("file:") || url.contains("mode=memory") {
        return None;
    }
    std::path::absolute(name).ok()
}

pub(crate) async fn connect(url: &str) -> Result<SqlStore> {
    let parsed = SqliteConnectOptions::from_str(url)?;
    let file = database_file(url, &parsed);
    let opts = parsed
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true)
        .pragma("temp_store", "memory");
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(60))
        .connect_with(opts.clone())
        .await?;
    let reader = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts.read_only(true))
        .await?;
    let (signals, _) = broadcast::channel(1024);
    let watcher = watch_other_processes(writer.clone(), signals.clone());
    Ok(SqlStore {
        pools: Pools::Sqlite { writer, reader },
        signals,
        listening: Default::default(),
        _watcher: Some(Arc::new(watcher)),
        file,
    })
}

/// Runs `INSERT … VALUES (…), (…) {suffix}` over `rows` in chunks; answers
/// the rows the statements returned.
pub(crate) async fn insert_values(
    c: &mut SqliteConnection,
    head: &str,
    rows: impl IntoIterator<Item = Vec<Arg>>,
    suffix: &str,
) -> Result<Vec<crate::db::Row>> {
    // collected first: the caller's iterator need not be held across awaits
    let rows: Vec<Vec<Arg>> = rows.into_iter().collect();
    let mut rows = rows.into_iter();
    let mut out = Vec::new();
    while rows.len() > 0 {
        let mut stmt = q(head);
        stmt.push(" VALUES ");
        for (i, row) in rows.by_ref().take(CHUNK).enumerate() {
            let ph: Vec<&str> = row.into_iter().map(|a| stmt.next(a)).collect();
            stmt.push(if i == 0 { "(" } else { ", (" })
                .push(&ph.join(", "))
                .push(")");
        }
        stmt.push(suffix);
        out.extend(Conn::Sqlite(&mut *c).all(&stmt).await?);
    }
    Ok(out)
}

/// Inserts queued runs, skipping any whose identity an active run holds;
/// answers the ids inserted. `status` takes its default, 'queued'.
pub(crate) async fn insert_runs(
    c: &mut SqliteConnection,
    runs: &[(RunId, &NewRun, Option<&str>)],
    parent: Option<RunId>,
    now: Timestamp,
) -> Result<HashSet<RunId>> {
    let found = insert_values(
        c,
        "INSERT INTO operation_runs (id, workspace_id, tenant_id, type, identity_key, params, initiator_id, \
         parent_id, available_at, created_at, updated_at)",
        runs.iter().map(|(id, new, key)| {
            vec![
                (*id).into(),
                new.workspace_id.into(),
                new.tenant_id.into(),
                new.op_type.as_str().into(),
                (*key).into(),
                new.params.to_json().into(),
                new.initiator.into(),
                parent.into(),
                new.available_at.into(),
                now.into(),
                now.into(),
            ]
        }),
        " ON CONFLICT DO NOTHING RETURNING id",
    )
    .await?;
    found.iter().map(|r| Ok(RunId::from_uuid(r.uuid("id")?))).collect()
}

/// The active run holding an identity, if any.
pub(crate) async fn active_twin(c: &mut SqliteConnection, new: &NewRun, identity_key: &str) -> Result<Option<Run>> {
    let stmt = q(format!(
        "SELECT {RUN_COLUMNS} FROM operation_runs WHERE active \
         AND workspace_id IS $1 AND tenant_id IS $2 AND type = $3 AND identity_key = $4"
    ))
    .bind(new.workspace_id)
    .bind(new.tenant_id)
    .bind(new.op_type.as_str())
    .bind(identity_key);
    let row = Conn::Sqlite(c).opt(&stmt).await?;
    row.as_ref().map(rows::run_from_row).transpose()
}

/// Subscribes users to runs (`via`: started or joined).
pub(crate) async fn subscribe(c: &mut SqliteConnection, subs: &[(RunId, UserId, &str)], now: Timestamp) -> Result<()> {
    insert_values(
        c,
        "INSERT INTO run_subscribers (run_id, user_id, via, created_at)",
        subs.iter()
            .map(|(run, user, via)| vec![(*run).into(), (*user).into(), (*via).into(), now.into()]),
        " ON CONFLICT DO NOTHING",
    )
    .await?;
    Ok(())
}

/// Writes pending units of `run` (with the child run each stands for, on
/// a fan-out).
pub(crate) async fn insert_units(
    c: &mut SqliteConnection,
    run: RunId,
    units: &[(String, Option<RunId>)],
    now: Timestamp,
) -> Result<()> {
    insert_values(
        c,
        "INSERT INTO operation_units (run_id, unit_key, state, child_run_id, updated_at)",
        units
            .iter()
            .map(|(key, child)| vec![run.into(), key.into(), "pending".into(), (*child).into(), now.into()]),
        "",
    )
    .await?;
    Ok(())
}

/// Adds to the per-day class counters (one writer: one shard).
pub(crate) async fn add_class_counts(
    c: &mut SqliteConnection,
    deltas: &[(uuid::Uuid, uuid::Uuid, i64, &'static str, i64)],
) -> Result<()> {
    insert_values(
        c,
        "INSERT INTO run_class_counts (workspace_id, tenant_id, day, class, shard, n)",
        deltas.iter().map(|(w, t, day, class, n)| {
            vec![
                (*w).into(),
                (*t).into(),
                (*day).into(),
                (*class).into(),
                0_i64.into(),
                (*n).into(),
            ]
        }),
        " ON CONFLICT (tenant_id, day, class, shard) DO UPDATE SET n = n + excluded.n",
    )
    .await?;
    Ok(())
}

/// Writes timeline entries.
pub(crate) async fn insert_events(c: &mut SqliteConnection, events: &[crate::model::NewEvent]) -> Result<()> {
    insert_values(
        c,
        "INSERT INTO run_events (run_id, at, kind, actor_id, attempt, detail)",
        events.iter().map(|e| {
            vec![
                e.run_id.into(),
                e.at.into(),
                e.kind.as_str().into(),
                e.actor_id.into(),
                e.attempt.into(),
                (&e.detail).into(),
            ]
        }),
        "",
    )
    .await?;
    Ok(())
}

/// Moves pending units to their results (the first result for a key wins;
/// a unit that is no longer pending is left as it is); answers the outcome
/// of each unit that moved. Results without a failure go in groups, one
/// statement per outcome and chunk.
pub(crate) async fn mark_units(
    c: &mut SqliteConnection,
    run: RunId,
    results: &[&crate::model::UnitResult],
    now: Timestamp,
) -> Result<Vec<tenantatlas_domain::progress::UnitOutcome>> {
    use tenantatlas_domain::progress::UnitOutcome;
    let mut plain: Vec<(UnitOutcome, Vec<&str>)> = Vec::new();
    let mut with_failure = Vec::new();
    for r in results {
        match &r.failure {
            Some(_) => with_failure.push(*r),
            None => match plain.iter_mut().find(|(o, _)| *o == r.outcome) {
                Some((_, keys)) => keys.push(&r.unit_key),
                None => plain.push((r.outcome, vec![&r.unit_key])),
            },
        }
    }
    let mut moved = Vec::new();
    for (outcome, keys) in &plain {
        for chunk in keys.chunks(CHUNK) {
            let mut stmt = Q::default();
            let state = stmt.next(outcome.as_str());
            let at = stmt.next(now);
            let id = stmt.next(run);
            let list: Vec<&str> = chunk.iter().map(|k| stmt.next(*k)).collect();
            stmt.push(&format!(
                "UPDATE operation_units SET state = {state}, attempts = attempts + 1, updated_at = {at} \
                 WHERE run_id = {id} AND state = 'pending' AND unit_key IN ({}) RETURNING unit_key",
                list.join(", ")
            ));
            let done = Conn::Sqlite(&mut *c).all(&stmt).await?.len();
            moved.extend(std::iter::repeat_n(*outcome, done));
        }
    }
    for r in with_failure {
        let stmt = q(
            "UPDATE operation_units SET state = $1, reason_code = $2, message = $3, attempts = attempts + 1, updated_at = $4 \
             WHERE run_id = $5 AND unit_key = $6 AND state = 'pending'",
        )
        .bind(r.outcome.as_str())
        .bind(r.failure.as_ref().map(|f| f.reason_code.as_str()))
        .bind(r.failure.as_ref().map(|f| f.message.as_str()))
        .bind(now)
        .bind(run)
        .bind(&r.unit_key);
        if Conn::Sqlite(&mut *c).execute(&stmt).await? == 1 {
            moved.push(r.outcome);
        }
    }
    Ok(moved)
}

/// Creates or joins each run (law 2): inserts with `ON CONFLICT DO NOTHING`
/// (the one writer serializes starts) and joins the active twin of each run
/// the unique index kept out.
pub(crate) async fn start_in(c: &mut SqliteConnection, batch: &[NewRun], now: Timestamp) -> Result<Vec<StartRecord>> {
    let prepared: Vec<(RunId, Option<String>)> = batch
        .iter()
        .map(|new| (RunId::from_uuid(new_uuid()), rows::identity_key_of(&new.identity, None)))
        .collect();
    let rows_in: Vec<(RunId, &NewRun, Option<&str>)> = prepared
        .iter()
        .zip(batch)
        .map(|((id, key), new)| (*id, new, key.as_deref()))
        .collect();
    // "created" is not written on the timeline: the run row is its record.
    let inserted = insert_runs(c, &rows_in, None, now).await?;
    let mut out = Vec::with_capacity(batch.len());
    let mut subs = Vec::new();
    let mut joined = Vec::new();
    for ((id, key), new) in prepared.into_iter().zip(batch) {
        if inserted.contains(&id) {
            if let Some(user) = new.initiator {
                subs.push((id, user, "started"));
            }
            out.push(StartRecord {
                run: rows::fresh_run(id, new, key, None, now),
                joined: false,
            });
            continue;
        }
        // Only a run with an identity key can have an active twin
        // (which may be a run inserted earlier in this very batch).
        let twin = match &key {
            Some(k) => active_twin(c, new, k).await?,
            None => None,
        }
        .ok_or_else(|| StoreError::Conflict("the run could not be created (an id collided); try again".into()))?;
        if let Some(user) = new.initiator {
            subs.push((twin.id, user, "joined"));
        }
        joined.push(NewEvent {
            run_id: twin.id,
            at: now,
            kind: RunEventKind::Joined,
            actor_id: new.initiator,
            attempt: None,
            detail: serde_json::json!({}),
        });
        out.push(StartRecord {
            run: twin,
            joined: true,
        });
    }
    insert_events(c, &joined).await?;
    subscribe(c, &subs, now).await?;
    Ok(out)
}
