//! Persistence for TenantAtlas: one store ([`SqlStore`]) over two real
//! databases, SQLite (the embedded default, one file) and PostgreSQL
//! (production, many nodes).
//!
//! Every statement on which the dialects agree is written once (`db`: SQL
//! text with `$n` placeholders and arguments that each dialect binds in its
//! own encoding). What the store does is split into focused traits — the
//! engine's port (`tenantatlas_engine::port`) declares them, this crate
//! implements each in a module of its own:
//!
//! | trait             | module          | what                                                   |
//! |-------------------|-----------------|--------------------------------------------------------|
//! | [`Admin`]         | `admin`         | migrations, health, signals, singleton duties, metrics |
//! | [`Directory`]     | `directory`     | workspaces, tenants, users, memberships, audit log     |
//! | [`Auth`]          | `auth`          | sessions, API tokens, passwords                        |
//! | [`Runs`]          | `runs`          | starting runs (law 2) and reading them                 |
//! | [`Progress`]      | `progress`      | units, fan-out, phases, counts, heartbeats (fenced)    |
//! | [`Lifecycle`]     | `lifecycle`     | law 1: the only writes of `status` and `outcome`       |
//! | [`Schedules`]     | `schedules`     | cron schedules and their exactly-once fires            |
//! | [`Notifications`] | `notifications` | a user's inbox                                         |
//! | [`Credentials`]   | `credentials`   | tenants' app credentials, sealed by the engine         |
//!
//! Per-dialect code lives in `sqlite` and `postgres` (connections, change
//! signals between processes, and the batch statements whose SQL really
//! differs: `UNNEST` arrays on PostgreSQL, multi-row `VALUES` on SQLite,
//! `FOR UPDATE SKIP LOCKED` claims, start dedupe). Each backend keeps its own
//! append-only migrations under `migrations/`. `docs/store.md` shows how to
//! add an entity.
//!
//! Law 1 lives in exactly one write family: `lifecycle.rs` holds the only
//! statements that change a run's `status` or `outcome`, and the only
//! statements that write notifications. A guard test in the engine fails if
//! any other SQL does.

mod admin;
mod auth;
mod counters;
mod credentials;
mod db;
mod directory;
mod error;
mod lifecycle;
pub mod model;
mod notifications;
mod postgres;
mod progress;
mod rows;
mod runs;
mod schedules;
mod signal;
mod sqlgen;
mod sqlite;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::SqlitePool;
use tokio::sync::broadcast;

pub use error::{Result, StoreError};
pub use tenantatlas_engine::port::{
    Admin, Auth, Backend, BackendKind, Credentials, Directory, Lifecycle, Notifications, Progress, Runs, Schedules,
    Store,
};

use db::{Pooled, Q, Row, Tx};
use model::Signal;

#[derive(Clone, Debug)]
enum Pools {
    /// All writes go through one writer connection (`BEGIN IMMEDIATE`);
    /// reads use a few read-only connections.
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    Pg(PgPool),
}

/// The store, over either database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqlStore {
    pools: Pools,
    signals: broadcast::Sender<Signal>,
    /// PostgreSQL: whether this node listens for other nodes' signals yet.
    listening: Arc<AtomicBool>,
    /// SQLite: the watcher of other processes' commits.
    _watcher: Option<Arc<sqlite::AbortOnDrop>>,
    /// SQLite on disk: the database file (absolute).
    file: Option<std::path::PathBuf>,
}

impl SqlStore {
    /// Opens (creating when missing) the SQLite database at `url`
    /// (`sqlite://PATH`).
    pub async fn sqlite(url: &str) -> Result<Self> {
        sqlite::connect(url).await
    }

    /// Connects to PostgreSQL at `url` (`postgres://…`).
    pub async fn postgres(url: &str) -> Result<Self> {
        let opts: PgConnectOptions = url.parse()?;
        Self::postgres_with(opts, 16).await
    }

    /// Connects to PostgreSQL with explicit options and pool size (tests
    /// use this to put each case in a schema of its own).
    pub async fn postgres_with(opts: PgConnectOptions, max_connections: u32) -> Result<Self> {
        postgres::connect(opts, max_connections).await
    }

    /// Begins a write transaction (SQLite: holding the write lock from its
    /// first statement).
    pub(crate) async fn begin(&self) -> Result<Tx> {
        Ok(match &self.pools {
            Pools::Sqlite { writer, .. } => {
                Tx::sqlite(writer.begin_with("BEGIN IMMEDIATE").await?, self.signals.clone())
            }
            Pools::Pg(pool) => Tx::pg(pool.begin().await?, self.signals.clone()),
        })
    }

    /// A connection for reads.
    pub(crate) async fn reader(&self) -> Result<Pooled> {
        Ok(match &self.pools {
            Pools::Sqlite { reader, .. } => Pooled::Sqlite(reader.acquire().await?),
            Pools::Pg(pool) => Pooled::Pg(pool.acquire().await?),
        })
    }

    /// Every row a read answers.
    pub(crate) async fn all(&self, q: &Q) -> Result<Vec<Row>> {
        self.reader().await?.conn().all(q).await
    }

    /// The row a read answers, if any.
    pub(crate) async fn opt(&self, q: &Q) -> Result<Option<Row>> {
        self.reader().await?.conn().opt(q).await
    }

    /// The one row a read answers.
    pub(crate) async fn one(&self, q: &Q) -> Result<Row> {
        self.reader().await?.conn().one(q).await
    }

    /// A connection for single write statements, each its own
    /// transaction (SQLite: the one writer connection).
    pub(crate) async fn writer(&self) -> Result<Pooled> {
        Ok(match &self.pools {
            Pools::Sqlite { writer, .. } => Pooled::Sqlite(writer.acquire().await?),
            Pools::Pg(pool) => Pooled::Pg(pool.acquire().await?),
        })
    }

    /// One write statement, a transaction of its own; answers the rows it
    /// changed.
    pub(crate) async fn write(&self, q: &Q) -> Result<u64> {
        self.writer().await?.conn().execute(q).await
    }
}

/// A singleton duty held on PostgreSQL: a connection of its own, detached
/// from the pool, holding the duty's advisory lock; when the node dies or
/// drops the guard, the connection closes and the lock goes with it. (SQLite
/// has one node: its duty is held without a lock.)
#[derive(Debug)]
pub(crate) struct HeldDuty(Option<sqlx::postgres::PgConnection>);

#[async_trait::async_trait]
impl tenantatlas_engine::port::Singleton for HeldDuty {
    async fn still_held(&mut self) -> bool {
        match &mut self.0 {
            None => true,
            Some(c) => sqlx::Connection::ping(c).await.is_ok(),
        }
    }
}

/// Connects to `url` (`sqlite://PATH`, `postgres://…`), creating an SQLite
/// file when missing. Migrations are not applied; call
/// [`Admin::migrate`].
pub async fn connect(url: &str) -> Result<Store> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqlStore::sqlite(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(SqlStore::postgres(url).await?))
    } else {
        // Show only the scheme: the rest of a URL may hold a password.
        let scheme: String = url.split(':').next().unwrap_or("").chars().take(20).collect();
        Err(StoreError::Url(format!("scheme {scheme:?}")))
    }
}

/// Applies pending migrations to the database at `url`, and only that.
pub async fn migrate(url: &str) -> Result<()> {
    let store = connect(url).await?;
    store.migrate().await?;
    store.close().await;
    Ok(())
}

/// Connects and applies pending migrations.
pub async fn open(url: &str) -> Result<Store> {
    let store = connect(url).await?;
    store.migrate().await?;
    Ok(store)
}

/// Generates a time-ordered id.
pub(crate) fn new_uuid() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// Ids used by tests and callers that need them before a write.
pub fn new_run_id() -> tenantatlas_domain::ids::RunId {
    tenantatlas_domain::ids::RunId::from_uuid(new_uuid())
}
