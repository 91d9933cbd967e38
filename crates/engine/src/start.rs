//! Starting runs: authorize, create or join (law 2), answer.
//!
//! A start only authorizes, creates or reuses the run, and answers (law 9:
//! no provider is called). A refused start — capability missing, tenant not
//! entitled, a system-only type, a type that needs an opt-in (`synthetic`)
//! the process did not give — writes
//! nothing, and so does a start of a type this build has no handler for
//! ([`EngineError::Unavailable`]): nothing is offered or queued that no
//! worker would execute. A user whose start joins an active run becomes its subscriber
//! and is notified when it ends, like the user who created it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::port::{NewRun, Tenant};
use tenantatlas_domain::access::{Membership, authorize_tenant};
use tenantatlas_domain::catalog::{OperationType, Scope, TypeSpec};
use tenantatlas_domain::ids::{TenantId, UserId};
use tenantatlas_domain::params::{Params, RawParams};
use tenantatlas_domain::run::Run;

use crate::Engine;
use crate::error::{EngineError, Result};

/// Who starts a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initiator {
    /// A user: authorized, subscribed, notified at the end.
    User(UserId),
    /// The system (scheduler, command line without `--as`): notifies nobody.
    System,
}

/// The answer to a start.
#[derive(Clone, Debug, PartialEq)]
pub struct Started {
    /// The run created or joined.
    pub run: Run,
    /// `true` when an identical active run was joined.
    pub joined: bool,
}

impl Engine {
    /// Checks that `who` may start `op` on `tenant`, whose workspace
    /// membership for the user is `membership`; answers the initiator to
    /// record.
    fn authorize_start(
        &self,
        who: Initiator,
        tenant: &Tenant,
        membership: Option<&Membership>,
        op: OperationType,
    ) -> Result<Option<UserId>> {
        let spec = self.enabled_spec(op)?;
        if spec.scope == Scope::System {
            return Err(EngineError::Refused(format!(
                "{} is a system operation; it runs on its schedule and cannot be started for a tenant",
                spec.name()
            )));
        }
        match who {
            Initiator::System => Ok(None),
            Initiator::User(_) => {
                let cap = spec
                    .start_capability
                    .ok_or_else(|| EngineError::Refused(format!("{} cannot be started by users", spec.name())))?;
                let grant = authorize_tenant(membership, tenant.workspace_id, tenant.id, cap)
                    .map_err(|d| EngineError::denied(d, "tenant"))?;
                Ok(Some(grant.user_id()))
            }
        }
    }

    fn new_run(&self, tenant: &Tenant, spec: &TypeSpec, params: Params, initiator: Option<UserId>) -> NewRun {
        NewRun {
            workspace_id: Some(tenant.workspace_id),
            tenant_id: Some(tenant.id),
            op_type: spec.op,
            identity: spec.identity_key(&params),
            params,
            initiator,
            available_at: self.now(),
        }
    }

    /// The tenant and `who`'s membership in its workspace, in one read.
    async fn access(&self, who: Initiator, id: TenantId) -> Result<(Tenant, Option<Membership>)> {
        let user = match who {
            Initiator::User(u) => Some(u),
            Initiator::System => None,
        };
        self.store()
            .tenant_access(id, user)
            .await?
            .ok_or(EngineError::NotFound("tenant"))
    }

    /// The admin-plane decision for `user` on `tenant` (law 10): not a
    /// member or not entitled → not found; otherwise the tenant, the
    /// membership, and whether the role holds `capability` (forbidden
    /// when it does not).
    pub async fn tenant_for(
        &self,
        user: UserId,
        tenant: TenantId,
        capability: tenantatlas_domain::access::Capability,
    ) -> Result<(Tenant, Membership)> {
        let (t, m) = self.access(Initiator::User(user), tenant).await?;
        authorize_tenant(m.as_ref(), t.workspace_id, t.id, capability).map_err(|d| EngineError::denied(d, "tenant"))?;
        let m = m.ok_or(EngineError::NotFound("tenant"))?;
        Ok((t, m))
    }

    /// Parses an operation type named at an edge (`field` names the input)
    /// and checks that this build can run it, before its parameters are
    /// read: a type without a handler is refused as
    /// [`EngineError::Unavailable`] rather than asked for parameters that
    /// would only queue work nothing executes.
    pub fn executable_type(&self, field: &str, name: &str) -> Result<OperationType> {
        let op = OperationType::parse(field, name)?;
        self.spec(op)?;
        Ok(op)
    }

    /// The one check behind every entry that could create a run (start,
    /// batch, system start, schedule, fan-out): this build must have the
    /// type's handler, whose spec it answers.
    pub fn spec(&self, op: OperationType) -> Result<&'static TypeSpec> {
        self.config().catalog.spec(op).ok_or(EngineError::Unavailable(op))
    }

    /// [`Engine::spec`], and the type's opt-in given to this process: what
    /// starts a run or keeps a schedule for it checks this (one rule for
    /// opt-in types: a process without the opt-in neither offers, starts,
    /// schedules nor executes them).
    pub fn enabled_spec(&self, op: OperationType) -> Result<&'static TypeSpec> {
        let spec = self.spec(op)?;
        match spec.opt_in {
            Some(how) if !self.config().enable_synthetic => {
                Err(EngineError::Refused(format!("{} is disabled; {how}", spec.name())))
            }
            _ => Ok(spec),
        }
    }

    /// Parses and validates start parameters of `op` (parsed once, at the
    /// edge: by its spec, then by its typed parameters).
    pub fn parse_params(&self, op: OperationType, raw: RawParams<'_>) -> Result<Params> {
        Ok(self.spec(op)?.parse_params(raw)?)
    }

    /// The operation types `membership` may start on `tenant` (start
    /// buttons are shown for these only).
    pub fn startable_types(&self, tenant: &Tenant, membership: &Membership) -> Vec<OperationType> {
        OperationType::ALL
            .iter()
            .copied()
            .filter(|op| {
                self.authorize_start(Initiator::User(membership.user_id), tenant, Some(membership), *op)
                    .is_ok()
            })
            .collect()
    }

    /// Starts `op` on `tenant` for `who`, or joins the identical active run.
    /// Concurrent starts share commits (group commit).
    pub async fn start(&self, who: Initiator, tenant: TenantId, op: OperationType, params: Params) -> Result<Started> {
        let (tenant, membership) = self.access(who, tenant).await?;
        let initiator = self.authorize_start(who, &tenant, membership.as_ref(), op)?;
        let new = self.new_run(&tenant, self.spec(op)?, params, initiator);
        let rec = self.inner.starter.submit(new).await?;
        if !rec.joined {
            self.tally_ref().started(op);
        }
        tracing::debug!(run.id = %rec.run.id, tenant.id = %tenant.id, joined = rec.joined, "start");
        Ok(Started {
            run: rec.run,
            joined: rec.joined,
        })
    }

    /// Starts many runs in one transaction (bulk work, benchmarks). Either
    /// every request is authorized and written, or nothing is.
    pub async fn start_many(
        &self,
        who: Initiator,
        requests: Vec<(TenantId, OperationType, Params)>,
    ) -> Result<Vec<Started>> {
        let mut tenants: HashMap<TenantId, (Tenant, Option<Membership>)> = HashMap::new();
        let mut decided: HashMap<(TenantId, OperationType), Option<UserId>> = HashMap::new();
        let mut batch = Vec::with_capacity(requests.len());
        for (tenant_id, op, params) in requests {
            if let Entry::Vacant(slot) = tenants.entry(tenant_id) {
                slot.insert(self.access(who, tenant_id).await?);
            }
            let (tenant, membership) = &tenants[&tenant_id];
            let initiator = match decided.entry((tenant_id, op)) {
                Entry::Occupied(e) => *e.get(),
                Entry::Vacant(slot) => *slot.insert(self.authorize_start(who, tenant, membership.as_ref(), op)?),
            };
            batch.push(self.new_run(tenant, self.spec(op)?, params, initiator));
        }
        let now = self.now();
        let records = self.store().start_runs(&batch, now).await?;
        for r in records.iter().filter(|r| !r.joined) {
            self.tally_ref().started(r.run.op_type);
        }
        Ok(records
            .into_iter()
            .map(|r| Started {
                run: r.run,
                joined: r.joined,
            })
            .collect())
    }

    /// Starts a system-scope operation (no tenant), or joins it.
    pub async fn start_system(&self, op: OperationType, params: Params) -> Result<Started> {
        let spec = self.spec(op)?;
        if spec.scope != Scope::System {
            return Err(EngineError::Refused(format!(
                "{} runs for a tenant, not for the system",
                op.as_str()
            )));
        }
        let new = NewRun {
            workspace_id: None,
            tenant_id: None,
            op_type: op,
            identity: spec.identity_key(&params),
            params,
            initiator: None,
            available_at: self.now(),
        };
        let rec = self.inner.starter.submit(new).await?;
        if !rec.joined {
            self.tally_ref().started(op);
        }
        Ok(Started {
            run: rec.run,
            joined: rec.joined,
        })
    }
}
