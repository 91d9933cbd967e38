//! The operation types this build can run: one module per type, each the
//! type's one home — its spec (capability, parameters, identity rule,
//! progress plan, stale thresholds, attempts), its typed parameters and its
//! handler, behind the engine's
//! [`Operation`](tenantatlas_engine::worker::Operation) trait — gathered in
//! [`registry`]. The engine offers, starts and claims exactly the types of
//! [`catalog`].
//!
//! | module             | operation type     |
//! |--------------------|--------------------|
//! | [`synthetic`]      | `synthetic`        |
//! | [`telemetry_prune`]| `telemetry.prune`  |
//! | [`provider_verify`]| `provider.verify`  |
//!
//! Handlers that read or write a tenant reach it through [`connect`] (the
//! tenant's provider spec and sealed credentials turned into a
//! `TenantProvider`), passed where [`registry_with`] builds them. The
//! tenant-governance types (inventory, backups, restore, drift, review
//! packs, …) arrive as modules here on top of it.

pub mod connect;
pub mod provider_verify;
pub mod synthetic;
pub mod telemetry_prune;

use tenantatlas_domain::catalog::Catalog;
use tenantatlas_engine::worker::Registry;

/// Every handler this build has, reaching tenants where
/// `TENANTATLAS_GRAPH_URL` / `TENANTATLAS_LOGIN_URL` say.
pub fn registry() -> Registry {
    registry_with(connect::Connector::from_env())
}

/// Every handler this build has, reaching tenants through `connector`.
pub fn registry_with(connector: connect::Connector) -> Registry {
    Registry::new()
        .with(synthetic::Synthetic)
        .with(telemetry_prune::TelemetryPrune)
        .with(provider_verify::ProviderVerify::new(connector))
}

/// The specs of every type this build can run (what the engine is
/// configured with before any worker exists).
pub fn catalog() -> Catalog {
    registry().catalog()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use tenantatlas_domain::catalog::{IdentityRule, Scope};
    use tenantatlas_domain::params::RawParams;

    use super::*;

    #[test]
    fn every_spec_is_coherent() {
        let catalog = catalog();
        assert_eq!(catalog.iter().count(), 3);
        for s in catalog.iter() {
            let name = s.name();
            assert!(s.max_attempts >= 1);
            assert!(s.stale.heartbeat >= Duration::from_secs(30), "{name}");
            assert_eq!(s.scope == Scope::System, s.start_capability.is_none(), "{name}");
            assert!(
                s.schedule.is_none() || s.scope == Scope::System,
                "{name}: only system types keep a schedule"
            );
            if let IdentityRule::Params(names) = s.identity {
                for n in names {
                    assert!(s.params.iter().any(|p| p.name == *n && p.required), "{name}: {n}");
                }
            }
            if let IdentityRule::ParamOrUnique(n) = s.identity {
                assert!(s.params.iter().any(|p| p.name == n), "{name}: {n}");
            }
            // defaults parse under their own spec and its typed check
            if s.params.iter().all(|p| !p.required) {
                assert!(s.parse_params(RawParams::Json(&json!({}))).is_ok(), "{name}");
            }
        }
    }
}
