//! `provider.verify`: the connection check of a tenant — sign-in, one read
//! per object type, and the application permissions granted against those
//! required. Each check is a unit of the run, so the run's unit ledger *is*
//! the check's answer (`tenant verify --json` and the API read it back with
//! `tenantatlas_domain::connection::report`), and a failed check carries its
//! reason code and next step like any failure.

use std::time::Duration;

use async_trait::async_trait;
use tenantatlas_domain::access::Capability;
use tenantatlas_domain::catalog::{IdentityRule, OperationType, ProgressPlan, StaleThresholds, TypeSpec, accepts};
use tenantatlas_domain::connection;
use tenantatlas_domain::lifecycle::Outcome;
use tenantatlas_domain::progress::UnitOutcome;
use tenantatlas_domain::reason::{Failure, ReasonCode};
use tenantatlas_engine::worker::{Done, HandlerError, Operation, RunContext};
use tenantatlas_providers::object::{ObjectType, permission_granted, required_permissions};

use crate::connect::Connector;
use crate::telemetry_prune::NoParams;

/// The spec.
pub static SPEC: TypeSpec = TypeSpec {
    stale: StaleThresholds {
        queued: Duration::from_secs(5 * 60),
        heartbeat: Duration::from_secs(60),
        running_floor: Duration::from_secs(5 * 60),
        running_max: None,
    },
    // a check answers now: a later attempt would answer a question nobody
    // is waiting for
    max_attempts: 1,
    check: accepts::<NoParams>,
    ..TypeSpec::tenant(
        OperationType::ProviderVerify,
        Capability::ManageTenants,
        ProgressPlan::Counted,
        &[],
        IdentityRule::PerTenant,
    )
};

fn read_key(i: usize, ty: ObjectType) -> String {
    connection::read_key(i, ty.as_str())
}

/// The connection check.
#[derive(Clone, Debug, Default)]
pub struct ProviderVerify {
    connector: Connector,
}

impl ProviderVerify {
    /// A check that connects through `connector`.
    pub fn new(connector: Connector) -> Self {
        Self { connector }
    }
}

#[async_trait]
impl Operation for ProviderVerify {
    const SPEC: &'static TypeSpec = &SPEC;
    type Params = NoParams;

    async fn run(&self, ctx: &mut RunContext, _: NoParams) -> Result<Done, HandlerError> {
        let tenant = ctx
            .tenant()
            .await?
            .cloned()
            .ok_or_else(|| HandlerError::fatal(ReasonCode::InternalError, "a connection check needs a tenant"))?;
        let provider = self
            .connector
            .connect(ctx.engine(), &tenant)
            .await
            .map_err(|e| e.into_handler_error(ctx.now()))?;
        let mut keys = vec![connection::SIGN_IN.to_owned()];
        keys.extend(ObjectType::ALL.iter().enumerate().map(|(i, t)| read_key(i, *t)));
        keys.extend(
            required_permissions()
                .iter()
                .enumerate()
                .map(|(i, p)| connection::permission_key(i, p)),
        );
        ctx.plan(keys).await?;
        let mut failures: Vec<Failure> = Vec::new();
        let access = match provider.access().await {
            Ok(a) => {
                ctx.unit(connection::SIGN_IN.to_owned(), UnitOutcome::Succeeded, None)
                    .await?;
                Some(a)
            }
            Err(e) => {
                let f = Failure::new(e.reason(), &e.safe_message());
                failures.push(f.clone());
                ctx.unit(connection::SIGN_IN.to_owned(), UnitOutcome::Failed, Some(f))
                    .await?;
                None
            }
        };
        for (i, ty) in ObjectType::ALL.into_iter().enumerate() {
            let key = read_key(i, ty);
            if access.is_none() {
                ctx.unit(key, UnitOutcome::Skipped, None).await?;
                continue;
            }
            match provider.list_page(ty, None).await {
                Ok(_) => ctx.unit(key, UnitOutcome::Succeeded, None).await?,
                Err(e) => {
                    let f = Failure::new(e.reason(), &format!("reading {}: {}", ty.as_str(), e.safe_message()));
                    failures.push(f.clone());
                    ctx.unit(key, UnitOutcome::Failed, Some(f)).await?;
                }
            }
        }
        for (i, p) in required_permissions().into_iter().enumerate() {
            let key = connection::permission_key(i, p);
            match &access {
                None => ctx.unit(key, UnitOutcome::Skipped, None).await?,
                Some(a) if permission_granted(&a.granted, p) => ctx.unit(key, UnitOutcome::Succeeded, None).await?,
                Some(_) => {
                    let f = Failure::new(
                        ReasonCode::ProviderPermissionMissing,
                        &format!(
                            "the app registration lacks the application permission {p}; grant it with admin consent in the tenant, then check again"
                        ),
                    );
                    failures.push(f.clone());
                    ctx.unit(key, UnitOutcome::Failed, Some(f)).await?;
                }
            }
        }
        ctx.flush().await?;
        Ok(match failures.first() {
            None => Done::Succeeded,
            Some(first) => Done::Outcome(Outcome::Failed, Some(first.reason_code), failures),
        })
    }
}
