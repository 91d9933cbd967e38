//! The operation handlers: one module per operation type behind the
//! engine's [`Handler`](tenantatlas_engine::worker::Handler) trait, gathered
//! in [`registry`]. A worker claims only the types registered here.
//!
//! | module             | operation type     |
//! |--------------------|--------------------|
//! | [`synthetic`]      | `synthetic`        |
//! | [`telemetry_prune`]| `telemetry.prune`  |
//!
//! The tenant-governance handlers (inventory, backups, restore, drift,
//! review packs, …) arrive with the provider issues.

pub mod synthetic;
pub mod telemetry_prune;

use tenantatlas_domain::catalog::OperationType;
use tenantatlas_engine::worker::Registry;

/// Every handler this build has.
pub fn registry() -> Registry {
    Registry::new()
        .with(OperationType::Synthetic, synthetic::Synthetic)
        .with(OperationType::TelemetryPrune, telemetry_prune::TelemetryPrune)
}
