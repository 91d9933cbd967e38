//! Durable cron schedules: a due schedule starts a system-initiated run
//! exactly once per fire time, however many nodes tick, and a fire time
//! missed while every node was down fires once, not once per missed tick.

use crate::port::{Actor, NewRun, NewSchedule, Schedule, ScheduleFire, User};
use serde::Serialize;
use tenantatlas_domain::access::{Capability, authorize_tenant};
use tenantatlas_domain::catalog::{OperationType, Scope};
use tenantatlas_domain::ids::{RunId, TenantId};
use tenantatlas_domain::params::Params;
use tenantatlas_domain::schedule::CronSpec;
use tenantatlas_domain::{FieldError, Timestamp};

use crate::Engine;
use crate::error::{EngineError, Result};

/// A schedule that fired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fired {
    /// The schedule's name.
    pub schedule: String,
    /// The fire time.
    pub fire_time: Timestamp,
    /// The run it started or joined.
    pub run_id: RunId,
    /// Whether an active run of the same identity was joined.
    pub joined: bool,
}

impl Engine {
    /// Creates or replaces (by name) a schedule that starts `op` on `tenant`
    /// (or, for a system operation, on no tenant).
    pub async fn put_schedule(
        &self,
        name: &str,
        cron: &CronSpec,
        tenant: Option<TenantId>,
        op: OperationType,
        params: Params,
        actor: Actor,
    ) -> Result<Schedule> {
        let name = tenantatlas_domain::names::printable_text("name", name, 100)?;
        let name = name.as_str();
        let target = match (self.enabled_spec(op)?.scope, tenant) {
            (Scope::Tenant, Some(t)) => {
                let t = self
                    .store()
                    .get_tenant(t)
                    .await?
                    .ok_or(EngineError::NotFound("tenant"))?;
                Some((t.workspace_id, t.id))
            }
            (Scope::Tenant, None) => return Err(FieldError::new("tenant", "is required for this operation").into()),
            (Scope::System, None) => None,
            (Scope::System, Some(_)) => {
                return Err(FieldError::new("tenant", "a system operation runs for no tenant").into());
            }
        };
        let now = self.now();
        let next = cron
            .next_after(now)
            .ok_or_else(|| FieldError::new("cron", "never matches a time"))?;
        Ok(self
            .store()
            .put_schedule(
                &NewSchedule {
                    name: name.to_owned(),
                    cron: cron.as_str().to_owned(),
                    target,
                    op_type: op,
                    params,
                    next_fire_at: next,
                },
                actor,
                now,
            )
            .await?)
    }

    /// Every schedule, by name.
    pub async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        Ok(self.store().list_schedules().await?)
    }

    /// The schedules `viewer` may see, by name: those of the tenants they
    /// may see runs of; every one for a platform operator.
    pub async fn schedules_for(&self, viewer: &User) -> Result<Vec<Schedule>> {
        let all = self.store().list_schedules().await?;
        if viewer.platform_operator {
            return Ok(all);
        }
        let memberships = self.store().memberships_of(viewer.id).await?;
        Ok(all
            .into_iter()
            .filter(|s| match (s.workspace_id, s.tenant_id) {
                (Some(ws), Some(t)) => {
                    let m = memberships.iter().find(|m| m.workspace_id == ws);
                    authorize_tenant(m, ws, t, Capability::ViewRuns).is_ok()
                }
                _ => false,
            })
            .collect())
    }

    /// Removes a schedule; the runs it started stay. A user needs the
    /// capability that starting its type needs, on its tenant; a system
    /// schedule is removed from the server command line (`None`) or by a
    /// platform operator, and one the build keeps (the daily telemetry
    /// prune) is refused: it would come back at the next start.
    pub async fn remove_schedule(&self, who: Option<&User>, key: &str) -> Result<Schedule> {
        let all = self.store().list_schedules().await?;
        let found = all
            .into_iter()
            .find(|s| s.id.to_string() == key || s.name.eq_ignore_ascii_case(key.trim()))
            .ok_or(EngineError::NotFound("schedule"))?;
        if let Some(u) = who {
            match (found.workspace_id, found.tenant_id) {
                (Some(ws), Some(t)) => {
                    let m = self.store().membership(u.id, ws).await?;
                    let cap = self
                        .spec(found.op_type)
                        .ok()
                        .and_then(|s| s.start_capability)
                        .unwrap_or(Capability::ManageMembers);
                    authorize_tenant(m.as_ref(), ws, t, Capability::ViewRuns)
                        .map_err(|d| EngineError::denied(d, "schedule"))?;
                    authorize_tenant(m.as_ref(), ws, t, cap).map_err(|d| EngineError::denied(d, "schedule"))?;
                }
                _ if u.platform_operator => {}
                _ => return Err(EngineError::NotFound("schedule")),
            }
        }
        // after authorization: who may not see a schedule learns nothing of it
        if self
            .config()
            .catalog
            .iter()
            .any(|spec| spec.schedule.is_some_and(|k| k.name == found.name))
        {
            return Err(EngineError::Refused(format!(
                "{:?} is kept by every node (it is recreated at start); it cannot be removed",
                found.name
            )));
        }
        if !self
            .store()
            .delete_schedule(found.id, crate::directory::actor_of(who), self.now())
            .await?
        {
            return Err(EngineError::NotFound("schedule"));
        }
        Ok(found)
    }

    /// Creates the schedules the catalog's types ask for (the daily
    /// telemetry prune) when missing, by name.
    pub async fn ensure_system_schedules(&self) -> Result<()> {
        let existing = self.store().list_schedules().await?;
        for spec in self.config().catalog.iter() {
            let Some(want) = spec.schedule else { continue };
            if existing.iter().any(|s| s.name == want.name) {
                continue;
            }
            let cron = CronSpec::parse("cron", want.cron)?;
            self.put_schedule(want.name, &cron, None, spec.op, Params::empty(), Actor::System)
                .await?;
        }
        Ok(())
    }

    /// Fires every due schedule once.
    pub async fn schedule_tick(&self) -> Result<Vec<Fired>> {
        let now = self.now();
        let mut fired = Vec::new();
        for s in self.store().due_schedules(now, 500).await? {
            let Ok(spec) = self.spec(s.op_type) else {
                // Written by a build that had this type's handler: starting
                // it here would only queue work nothing executes.
                tracing::warn!(schedule = %s.name, op = %s.op_type, "this build cannot run the schedule's type; skipped");
                continue;
            };
            if let Err(e) = self.enabled_spec(s.op_type) {
                // another node, given the opt-in, fires it
                tracing::debug!(schedule = %s.name, error = %e, "the schedule's type is not enabled here; skipped");
                continue;
            }
            let cron = match CronSpec::parse("cron", &s.cron) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(schedule = %s.name, error = %e, "a stored schedule no longer parses; skipped");
                    continue;
                }
            };
            // After a downtime, every missed fire time collapses into this one.
            let Some(next) = cron.next_after(now) else { continue };
            let run = NewRun {
                workspace_id: s.workspace_id,
                tenant_id: s.tenant_id,
                op_type: s.op_type,
                identity: spec.identity_key(&s.params),
                params: s.params.clone(),
                initiator: None,
                available_at: now,
            };
            let fire = ScheduleFire {
                schedule_id: s.id,
                expected: s.next_fire_at,
                next,
                run,
                now,
            };
            if let Some(rec) = self.store().fire_schedule(&fire).await? {
                if !rec.joined {
                    self.tally_ref().started(rec.run.op_type);
                }
                tracing::info!(schedule = %s.name, run.id = %rec.run.id, joined = rec.joined, "schedule fired");
                fired.push(Fired {
                    schedule: s.name.clone(),
                    fire_time: s.next_fire_at,
                    run_id: rec.run.id,
                    joined: rec.joined,
                });
            }
        }
        Ok(fired)
    }
}
