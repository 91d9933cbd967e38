//! Fresh databases for conformance cases: an SQLite file in a temporary
//! directory, or a PostgreSQL schema of its own (dropped afterwards) when
//! `TENANTATLAS_TEST_POSTGRES_URL` is set.

use std::str::FromStr;
use std::sync::{Arc, Once};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::access::Role;
use tenantatlas_domain::catalog::Catalog;
use tenantatlas_domain::ids::{TenantId, UserId, WorkspaceId};
use tenantatlas_engine::{Engine, EngineConfig, ManualClock};
use tenantatlas_store::SqlStore;
use tenantatlas_store::Store;
use tenantatlas_store::model::{Actor, MembershipWrite};

pub const PG_ENV: &str = "TENANTATLAS_TEST_POSTGRES_URL";

/// A fixed PHC string so seeding users costs no hashing time.
pub const TEST_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$8yQ7hVbQ2q1Jm2pW4kXxQ0b5f0Xx7k8h2Yl0eB1nJ6M";

pub fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("t0", "2026-11-23T09:00:00Z").unwrap()
}

enum Kind {
    Sqlite { _dir: tempfile::TempDir, url: String },
    Postgres { base: String, schema: String },
}

/// One fresh database.
pub struct Db {
    kind: Kind,
}

impl Db {
    /// Opens one more independent store (its own pool) on this database,
    /// as another process or node would.
    pub async fn open(&self) -> Store {
        match &self.kind {
            Kind::Sqlite { url, .. } => Arc::new(SqlStore::sqlite(url).await.unwrap()),
            Kind::Postgres { base, schema } => {
                let opts = PgConnectOptions::from_str(base)
                    .unwrap()
                    .options([("search_path", schema.as_str())]);
                Arc::new(SqlStore::postgres_with(opts, 8).await.unwrap())
            }
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Kind::Postgres { base, schema } = &self.kind {
            let (base, schema) = (base.clone(), schema.clone());
            // Drop runs outside async context; use a runtime of our own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(pool) = sqlx::PgPool::connect(&base).await {
                        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                            .execute(&pool)
                            .await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

impl Db {
    /// Loads a dump into this fresh database, as a database an earlier
    /// build made: `sqlite` is an `sqlite3 .dump`, `postgres` a `pg_dump` of
    /// the schema `fx_main` (renamed to this database's schema).
    pub async fn load_dump(&self, sqlite: &str, postgres: &str) {
        use sqlx::Connection as _;
        match &self.kind {
            Kind::Sqlite { url, .. } => {
                let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                    .unwrap()
                    .create_if_missing(true);
                let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
                sqlx::raw_sql(sqlite).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
            Kind::Postgres { base, schema } => {
                let mut c = sqlx::PgConnection::connect(base).await.unwrap();
                sqlx::raw_sql(&postgres.replace("fx_main", schema))
                    .execute(&mut c)
                    .await
                    .unwrap();
                c.close().await.unwrap();
            }
        }
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.kind, Kind::Postgres { .. })
    }
}

pub async fn sqlite_db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    Db {
        kind: Kind::Sqlite { _dir: dir, url },
    }
}

static SKIP_NOTICE: Once = Once::new();

/// A fresh PostgreSQL schema, or `None` when PostgreSQL is not configured.
pub async fn postgres_db() -> Option<Db> {
    let Ok(base) = std::env::var(PG_ENV) else {
        if std::env::var("TENANTATLAS_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            panic!("TENANTATLAS_REQUIRE_POSTGRES=1 but {PG_ENV} is not set");
        }
        SKIP_NOTICE.call_once(|| eprintln!("{PG_ENV} is not set: running the conformance suite on SQLite only"));
        return None;
    };
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let pool = sqlx::PgPool::connect(&base).await.expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    Some(Db {
        kind: Kind::Postgres { base, schema },
    })
}

/// This build's types and the stand-ins: the engine's laws hold for each,
/// whether or not this build has its handler (what a build offers is
/// tested apart, in `starts.rs`, with the registry's catalog).
pub fn every_type() -> Catalog {
    crate::standins::catalog()
}

/// A case's world: a database, a store, an engine and its clock.
pub struct Ctx {
    pub db: Db,
    pub store: Store,
    pub engine: Engine,
    pub clock: Arc<ManualClock>,
}

impl Ctx {
    pub async fn new(db: Db) -> Self {
        Self::with_config(
            db,
            EngineConfig {
                catalog: every_type(),
                enable_synthetic: true,
                ..EngineConfig::default()
            },
        )
        .await
    }

    /// A world whose engine reads the system clock (for real workers).
    pub async fn real_time(db: Db) -> (Self, Engine) {
        let c = Self::new(db).await;
        let engine = Engine::new(
            c.store.clone(),
            Arc::new(tenantatlas_engine::SystemClock),
            EngineConfig {
                catalog: every_type(),
                enable_synthetic: true,
                ..EngineConfig::default()
            },
        );
        (c, engine)
    }

    pub async fn with_config(db: Db, config: EngineConfig) -> Self {
        let store = db.open().await;
        store.migrate().await.unwrap();
        let clock = Arc::new(ManualClock::new(t0()));
        let engine = Engine::new(store.clone(), clock.clone(), config);
        Self {
            db,
            store,
            engine,
            clock,
        }
    }

    /// Another engine (own pool, own start collector) on the same database
    /// and clock: a second node.
    pub async fn another_engine(&self) -> Engine {
        Engine::new(self.db.open().await, self.clock.clone(), self.engine.config().clone())
    }

    /// Another engine on the same database and clock with a key setting
    /// of its own (and its own sealer, reading the key afresh): another
    /// process, configured differently.
    pub async fn another_engine_with(&self, secret_key: Option<tenantatlas_engine::secrets::SecretKey>) -> Engine {
        Engine::new(
            self.db.open().await,
            self.clock.clone(),
            EngineConfig {
                secret_key,
                ..self.engine.config().clone()
            },
        )
    }

    /// A run's timeline as every surface shows it.
    pub async fn events(&self, id: tenantatlas_domain::ids::RunId) -> Vec<tenantatlas_store::model::RunEvent> {
        let run = self.store.get_run(id).await.unwrap().unwrap();
        self.engine.timeline(&run).await.unwrap()
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    pub async fn user(&self, email: &str) -> UserId {
        self.store
            .add_user(email, TEST_HASH, false, Actor::Cli, self.clock_now())
            .await
            .unwrap()
            .id
    }

    pub fn clock_now(&self) -> Timestamp {
        tenantatlas_engine::Clock::now(self.clock.as_ref())
    }

    pub async fn member(&self, ws: WorkspaceId, user: UserId, role: Role, tenants: Option<Vec<TenantId>>) {
        self.store
            .put_membership(
                &MembershipWrite {
                    workspace_id: ws,
                    user_id: user,
                    role,
                    tenants,
                },
                Actor::Cli,
                self.clock_now(),
            )
            .await
            .unwrap();
    }

    /// A workspace with two tenants and one user per role (entitled to
    /// every tenant), plus a member entitled to tenant B only and a user
    /// who is no member.
    pub async fn seed(&self) -> Seed {
        let now = self.clock_now();
        let ws = self
            .store
            .create_workspace("Contoso MSP", Actor::Cli, now)
            .await
            .unwrap();
        let a = self
            .store
            .add_tenant(ws.id, "Tenant A", Some("directory:/tmp/a"), Actor::Cli, now)
            .await
            .unwrap();
        let b = self
            .store
            .add_tenant(ws.id, "Tenant B", None, Actor::Cli, now)
            .await
            .unwrap();
        let owner = self.user("owner@contoso.test").await;
        let operator = self.user("operator@contoso.test").await;
        let readonly = self.user("readonly@contoso.test").await;
        let scoped = self.user("scoped@contoso.test").await;
        let outsider = self.user("outsider@fabrikam.test").await;
        self.member(ws.id, owner, Role::Owner, None).await;
        self.member(ws.id, operator, Role::Operator, None).await;
        self.member(ws.id, readonly, Role::Readonly, None).await;
        self.member(ws.id, scoped, Role::Operator, Some(vec![b.id])).await;
        Seed {
            ws: ws.id,
            a: a.id,
            b: b.id,
            owner,
            operator,
            readonly,
            scoped,
            outsider,
        }
    }
}

pub struct Seed {
    pub ws: WorkspaceId,
    pub a: TenantId,
    pub b: TenantId,
    pub owner: UserId,
    pub operator: UserId,
    pub readonly: UserId,
    pub scoped: UserId,
    pub outsider: UserId,
}

/// Declares each case once and runs it on SQLite and, when configured,
/// PostgreSQL.
#[macro_export]
macro_rules! conformance {
    ($($case:path => $name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    $case($crate::harness::sqlite_db().await).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(db) = $crate::harness::postgres_db().await {
                        $case(db).await;
                    }
                }
            )*
        }
    };
}
