//! Law 9 — monitoring reads only the database; law 10 — every read is
//! scoped to what the caller may see; law 6 — one classification.
//!
//! A [`Viewer`] becomes a row-level [`RunScope`] (the workspaces a user is
//! entitled to in full, plus individually entitled tenants) that every list,
//! count and detail query carries. A run outside the scope does not exist
//! for the viewer.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::port::{CountQuery, Cursor, ProblemCount, RunEvent, RunFilter, RunPage, RunQuery, RunScope, UnitRecord};
use tenantatlas_domain::access::TenantScope;
use tenantatlas_domain::ids::{RunId, TenantId, UserId, WorkspaceId};
use tenantatlas_domain::lifecycle::RunStatus;
use tenantatlas_domain::problem::ProblemClass;
use tenantatlas_domain::run::Run;

use crate::Engine;
use crate::error::{EngineError, Result};

/// Who is looking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Viewer {
    /// A user: sees the tenants they are entitled to.
    User(UserId),
    /// The system plane or the server's command line: sees everything.
    Everything,
}

/// A run with what its detail page shows.
#[derive(Clone, Debug, PartialEq)]
pub struct RunDetail {
    /// The run.
    pub run: Run,
    /// Its timeline, oldest first.
    pub events: Vec<RunEvent>,
    /// Its unit ledger (first page).
    pub units: Vec<UnitRecord>,
    /// Its children (first page), newest first.
    pub children: Vec<Run>,
}

/// Counts per problem class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassCounts([u64; 6]);

impl ClassCounts {
    fn index(c: ProblemClass) -> usize {
        ProblemClass::ALL.iter().position(|x| *x == c).unwrap_or(0)
    }

    /// The count of `class`.
    pub fn get(&self, class: ProblemClass) -> u64 {
        self.0[Self::index(class)]
    }

    fn add(&mut self, class: ProblemClass, n: u64) {
        self.0[Self::index(class)] += n;
    }

    /// Every class with its count.
    pub fn iter(&self) -> impl Iterator<Item = (ProblemClass, u64)> + '_ {
        ProblemClass::ALL.iter().map(|c| (*c, self.get(*c)))
    }

    /// All runs counted.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// Problem-class counts per tenant, per workspace and overall.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProblemSummary {
    /// Per tenant.
    pub per_tenant: BTreeMap<TenantId, ClassCounts>,
    /// Per workspace.
    pub per_workspace: BTreeMap<WorkspaceId, ClassCounts>,
    /// Everything in scope.
    pub total: ClassCounts,
}

impl Engine {
    /// The row-level scope of `viewer`.
    pub async fn scope_of(&self, viewer: Viewer) -> Result<RunScope> {
        match viewer {
            Viewer::Everything => Ok(RunScope::Everything),
            Viewer::User(user) => {
                let mut workspaces = Vec::new();
                let mut tenants = Vec::new();
                for m in self.store().memberships_of(user).await? {
                    match m.tenants {
                        TenantScope::All => workspaces.push(m.workspace_id),
                        TenantScope::Only(ts) => tenants.extend(ts),
                    }
                }
                Ok(RunScope::Granted { workspaces, tenants })
            }
        }
    }

    /// A page of runs visible to `viewer`, newest first.
    pub async fn list_runs(
        &self,
        viewer: Viewer,
        filter: RunFilter,
        limit: u32,
        cursor: Option<Cursor>,
    ) -> Result<RunPage> {
        let scope = self.scope_of(viewer).await?;
        Ok(self
            .store()
            .list_runs(&RunQuery {
                scope,
                filter,
                limit,
                cursor,
                now: self.now(),
                thresholds: self.thresholds(),
            })
            .await?)
    }

    /// Whether `viewer` may see `run`.
    pub async fn can_see(&self, viewer: Viewer, run: &Run) -> Result<bool> {
        Ok(match self.scope_of(viewer).await? {
            RunScope::Everything => true,
            RunScope::Granted { workspaces, tenants } => {
                run.workspace_id.is_some_and(|w| workspaces.contains(&w))
                    || run.tenant_id.is_some_and(|t| tenants.contains(&t))
            }
        })
    }

    /// A run visible to `viewer` (otherwise not found).
    pub async fn get_run_for(&self, viewer: Viewer, id: RunId) -> Result<Run> {
        let run = self.store().get_run(id).await?.ok_or(EngineError::NotFound("run"))?;
        if self.can_see(viewer, &run).await? {
            Ok(run)
        } else {
            Err(EngineError::NotFound("run"))
        }
    }

    /// A run's unit ledger, by key (for the command line and tests: whether
    /// each unit was counted once).
    pub async fn unit_ledger(&self, run: RunId, limit: u32) -> Result<Vec<tenantatlas_domain::run::UnitRecord>> {
        Ok(self.store().run_units(run, false, limit).await?)
    }

    /// The latest connection check (`provider.verify`) of `tenant` that
    /// `viewer` may see, with its answer read back from its units.
    pub async fn connection_check(
        &self,
        viewer: Viewer,
        tenant: &crate::port::Tenant,
    ) -> Result<Option<(Run, tenantatlas_domain::connection::Report)>> {
        let filter = RunFilter {
            tenant: Some(tenant.id),
            op_type: Some(tenantatlas_domain::catalog::OperationType::ProviderVerify),
            ..RunFilter::default()
        };
        let Some(run) = self.list_runs(viewer, filter, 1, None).await?.runs.into_iter().next() else {
            return Ok(None);
        };
        let units = self.unit_ledger(run.id, 1_000).await?;
        let kind = tenant
            .provider
            .as_deref()
            .and_then(|p| p.split_once(':'))
            .map_or("none", |(k, _)| k);
        let report = tenantatlas_domain::connection::report(kind, &units, run.failures.first());
        Ok(Some((run, report)))
    }

    /// A run's timeline, oldest first: its stored events and what its row
    /// and notifications record (see [`crate::timeline`]).
    pub async fn timeline(&self, run: &Run) -> Result<Vec<RunEvent>> {
        let stored = self.store().run_events(run.id).await?;
        let notified = if run.state.status() == RunStatus::Completed {
            self.store().run_notified(run.id).await?
        } else {
            None
        };
        Ok(crate::timeline::assemble(run, stored, notified))
    }

    /// A run's detail for `viewer`.
    pub async fn run_detail(&self, viewer: Viewer, id: RunId) -> Result<RunDetail> {
        let run = self.get_run_for(viewer, id).await?;
        let events = self.timeline(&run).await?;
        let units = self.store().run_units(id, false, 200).await?;
        let children = if run.units.total.is_some() {
            self.list_runs(
                viewer,
                RunFilter {
                    parent: Some(id),
                    ..RunFilter::default()
                },
                100,
                None,
            )
            .await?
            .runs
        } else {
            Vec::new()
        };
        Ok(RunDetail {
            run,
            events,
            units,
            children,
        })
    }

    /// Problem-class counts in `viewer`'s scope: active runs always count,
    /// completed runs when they completed within `window`.
    pub async fn problem_summary(&self, viewer: Viewer, filter: RunFilter, window: Duration) -> Result<ProblemSummary> {
        let scope = self.scope_of(viewer).await?;
        let now = self.now();
        let rows: Vec<ProblemCount> = self
            .store()
            .count_problems(&CountQuery {
                scope,
                filter,
                completed_since: now.minus(window),
                now,
                thresholds: self.thresholds(),
            })
            .await?;
        let mut out = ProblemSummary::default();
        for r in rows {
            if let Some(t) = r.tenant_id {
                out.per_tenant.entry(t).or_default().add(r.class, r.count);
            }
            if let Some(w) = r.workspace_id {
                out.per_workspace.entry(w).or_default().add(r.class, r.count);
            }
            out.total.add(r.class, r.count);
        }
        Ok(out)
    }

    /// Completed runs per UTC day (day number since the epoch) and class in
    /// `viewer`'s scope, over the last `days` days (today included).
    pub async fn runs_per_day(&self, viewer: Viewer, days: u32) -> Result<Vec<(i64, ProblemClass, u64)>> {
        let scope = self.scope_of(viewer).await?;
        let since = self
            .now()
            .minus(Duration::from_secs(86_400 * u64::from(days.saturating_sub(1))));
        Ok(self.store().runs_per_day(&scope, since).await?)
    }

    /// The durations of the most recent successful runs of every type that
    /// has some (the system plane's chart; not scoped).
    pub async fn recent_durations_by_type(
        &self,
        per_type: u32,
    ) -> Result<Vec<(tenantatlas_domain::catalog::OperationType, Vec<Duration>)>> {
        let mut out = Vec::new();
        for op in tenantatlas_domain::catalog::OperationType::ALL {
            let d = self.store().recent_durations(op, per_type).await?;
            if !d.is_empty() {
                out.push((op, d));
            }
        }
        Ok(out)
    }
}
