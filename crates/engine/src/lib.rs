//! The operation service of TenantAtlas.
//!
//! [`Engine`] is the one service every entry point (command line, HTTP,
//! scheduler, workers) goes through:
//!
//! | module        | what                                                             |
//! |---------------|------------------------------------------------------------------|
//! | `start`       | authorize, create or join (law 2), group commit ([`batcher`])   |
//! | [`lifecycle`] | law 1: the only caller of the store's lifecycle write            |
//! | `progress`    | law 4 and 11: units, phases, counts, fan-out                     |
//! | `monitor`     | law 6 and 9: scoped reads from the database only                 |
//! | [`timeline`]  | a run's timeline: stored events and what its row records         |
//! | `directory`   | workspaces, tenants, users, memberships, the audit log           |
//! | `credentials` | tenants' app credentials, sealed by [`secrets`] before storage   |
//! | [`secrets`]   | the key and the AEAD that seal secrets at rest                   |
//! | `inbox`       | a user's notifications                                           |
//! | [`password`]  | Argon2id hashing                                                 |
//! | [`clock`]     | injected time                                                    |
//! | [`port`]      | what the engine needs from storage (implemented by the store)   |

pub mod auth;
mod batcher;
pub mod clock;
mod credentials;
mod directory;
mod error;
mod hashpool;
mod inbox;
pub mod lifecycle;
mod monitor;
pub mod node;
pub mod password;
pub mod port;
mod progress;
mod reconciler;
mod scheduler;
pub mod secrets;
mod start;
mod tally;
pub mod timeline;
pub mod worker;

use std::sync::Arc;

use port::Store;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::catalog::Catalog;
use tenantatlas_domain::problem::Thresholds;
use tenantatlas_domain::run::Run;
use tenantatlas_domain::view::RunView;

pub use auth::{IssuedToken, SessionPolicy};
pub use clock::{Clock, ManualClock, SystemClock};
pub use credentials::TenantCredentials;
pub use error::{EngineError, Result};
pub use lifecycle::{CancelOutcome, Completion};
pub use monitor::{ClassCounts, ProblemSummary, RunDetail, Viewer};
pub use port::{BackendKind, CredentialStatus, MetricsGroup, MetricsSnapshot, RequeueCause};
pub use reconciler::{ReconciledRun, SweepReport};
pub use scheduler::Fired;
pub use start::{Initiator, Started};
pub use tally::{CLAIM_LATENCY_BUCKETS, Histogram, TallySnapshot};

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The specs of the operation types this build can execute (its
    /// handler registry's [`Registry::catalog`](worker::Registry::catalog)):
    /// the only ones offered, accepted at start, and given stale thresholds
    /// of their own. Empty by default, so that nothing is offered that no
    /// handler would run.
    pub catalog: Catalog,
    /// Whether types that need an opt-in (`synthetic`) may be started.
    pub enable_synthetic: bool,
    /// Most starts written in one group commit.
    pub max_start_batch: usize,
    /// Group commits in flight at once.
    pub start_batches_in_flight: usize,
    /// Most worker completions written in one group commit.
    pub max_completion_batch: usize,
    /// Completion group commits in flight at once.
    pub completion_batches_in_flight: usize,
    /// Password hashes computed at once (each Argon2id hash holds 19 MiB
    /// for its duration): the cores, by default.
    pub hashing_slots: usize,
    /// How long a sign-in waits for a hashing slot before it is answered
    /// [`EngineError::Busy`].
    pub hashing_wait: std::time::Duration,
    /// The key that seals tenant secrets ([`secrets::SECRET_KEY_ENV`]).
    /// Without it, an SQLite database on disk gets a key file beside it on
    /// first use ([`secrets::key_file_of`]); on PostgreSQL storing or
    /// reading a secret fails with [`secrets::SecretError::NoKey`].
    pub secret_key: Option<secrets::SecretKey>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            catalog: Catalog::EMPTY,
            enable_synthetic: false,
            max_start_batch: 512,
            start_batches_in_flight: 2,
            max_completion_batch: 1024,
            completion_batches_in_flight: 2,
            hashing_slots: std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            hashing_wait: std::time::Duration::from_secs(2),
            secret_key: None,
        }
    }
}

struct Inner {
    store: Store,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    thresholds: std::sync::RwLock<Thresholds>,
    starter: batcher::Starter,
    completer: lifecycle::Completer,
    tally: tally::Tally,
    hashing: tokio::sync::Semaphore,
    hash_pool: hashpool::HashPool,
    /// Set on first use: the key file is read (or created) only when a
    /// secret is sealed or opened.
    sealer: tokio::sync::OnceCell<secrets::Sealer>,
}

/// The operation service. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("backend", &self.inner.store.kind())
            .finish()
    }
}

impl Engine {
    /// Builds the service over `store`. Must be called inside a Tokio
    /// runtime (it spawns the start collector).
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: EngineConfig) -> Self {
        let starter = batcher::Starter::spawn(
            store.clone(),
            clock.clone(),
            config.max_start_batch,
            config.start_batches_in_flight,
        );
        let completer = lifecycle::Completer::spawn(
            store.clone(),
            config.max_completion_batch,
            config.completion_batches_in_flight,
        );
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                thresholds: std::sync::RwLock::new(Thresholds::of_catalog(&config.catalog)),
                hashing: tokio::sync::Semaphore::new(config.hashing_slots.max(1)),
                hash_pool: hashpool::HashPool::new(config.hashing_slots.max(1)),
                config,
                starter,
                completer,
                tally: tally::Tally::default(),
                sealer: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// What this node started, completed, reconciled and claimed since it
    /// began (the counters of `/metrics`).
    pub fn tally(&self) -> TallySnapshot {
        self.inner.tally.snapshot()
    }

    pub(crate) fn tally_ref(&self) -> &tally::Tally {
        &self.inner.tally
    }

    /// The database file, on SQLite (files that belong beside it: the
    /// secret key, the demo's tenant folders).
    pub fn database_file(&self) -> Option<std::path::PathBuf> {
        self.store().database_file()
    }

    /// The store: the engine's alone, so that everything above it (the
    /// hub, the command line) reaches data through the engine's rules.
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        Ok(self.store().ping().await?)
    }

    /// The database's figures for `/metrics` (active runs, queue depth).
    pub async fn store_metrics(&self) -> Result<MetricsSnapshot> {
        Ok(self.store().metrics(self.now()).await?)
    }

    /// Change signals (runs changed, work due), from this node and, on
    /// PostgreSQL, every other.
    pub fn signals(&self) -> tokio::sync::broadcast::Receiver<tenantatlas_domain::query::Signal> {
        self.store().signals()
    }

    /// Closes the database connections (at exit).
    pub async fn close(&self) {
        self.store().close().await;
    }

    /// Now, by the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The stale thresholds in force (the catalog's, refined by what the
    /// reconciler learned from recent runs).
    pub fn thresholds(&self) -> Thresholds {
        self.inner
            .thresholds
            .read()
            .map_or_else(|p| p.into_inner().clone(), |t| t.clone())
    }

    pub(crate) fn hash_pool(&self) -> &hashpool::HashPool {
        &self.inner.hash_pool
    }

    pub(crate) fn hashing_slots(&self) -> &tokio::sync::Semaphore {
        &self.inner.hashing
    }

    pub(crate) fn set_thresholds(&self, t: Thresholds) {
        if let Ok(mut cur) = self.inner.thresholds.write() {
            *cur = t;
        }
    }

    /// The public JSON view of `run` now.
    pub fn view(&self, run: &Run) -> RunView {
        RunView::of(run, self.now(), &self.thresholds())
    }
}
