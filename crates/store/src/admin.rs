//! The store as a whole: migrations, health, change signals, singleton
//! duties and the figures of `/metrics`.

use async_trait::async_trait;
use tenantatlas_domain::Timestamp;
use tenantatlas_engine::port::Admin;
use tokio::sync::broadcast;

use crate::db::q;
use crate::error::Result;
use crate::model::{MetricsGroup, MetricsSnapshot, Signal};
use crate::rows::RowExt as _;
use tenantatlas_engine::port::{BackendKind, SingletonGuard};

use crate::{HeldDuty, Pools, SqlStore, sqlgen};

#[async_trait]
impl Admin for SqlStore {
    fn kind(&self) -> BackendKind {
        match self.pools {
            Pools::Sqlite { .. } => BackendKind::Sqlite,
            Pools::Pg(_) => BackendKind::Postgres,
        }
    }

    async fn migrate(&self) -> Result<()> {
        match &self.pools {
            Pools::Sqlite { writer, .. } => sqlx::migrate!("./migrations/sqlite").run(writer).await?,
            Pools::Pg(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    fn database_file(&self) -> Option<std::path::PathBuf> {
        self.file.clone()
    }

    async fn ping(&self) -> Result<()> {
        self.one(&q("SELECT 1 AS one")).await?;
        Ok(())
    }

    async fn close(&self) {
        match &self.pools {
            Pools::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Pools::Pg(pool) => pool.close().await,
        }
    }

    fn signals(&self) -> broadcast::Receiver<Signal> {
        let rx = self.signals.subscribe();
        if let Pools::Pg(pool) = &self.pools
            && !self.listening.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            tokio::spawn(crate::postgres::listen(pool.clone(), self.signals.clone()));
        }
        rx
    }

    async fn try_singleton(&self, name: &str) -> Result<Option<SingletonGuard>> {
        match &self.pools {
            Pools::Sqlite { .. } => Ok(Some(Box::new(HeldDuty(None)))),
            Pools::Pg(pool) => crate::postgres::try_singleton(pool, name).await,
        }
    }

    async fn metrics(&self, now: Timestamp) -> Result<MetricsSnapshot> {
        let groups = self.all(&q(sqlgen::METRICS_ACTIVE)).await?;
        let mut out = MetricsSnapshot::default();
        for r in &groups {
            out.active.push(MetricsGroup {
                op_type: r.text("type")?,
                status: r.text("status")?,
                count: u64::try_from(r.int("n")?).unwrap_or(0),
            });
        }
        let depth = self.one(&q(sqlgen::METRICS_QUEUE_DEPTH).bind(now)).await?;
        out.queue_depth = u64::try_from(depth.int("n")?).unwrap_or(0);
        Ok(out)
    }
}
