//! Stand-in specs for types whose homes (in `ops`) are not built yet: the
//! engine's laws hold for every type, so cases exercise identity rules,
//! parameters and attempt limits this build's own types do not have (one
//! mutation per backup set, one restore per tenant, fan-out parents).
//! These are test fixtures, not the product's specs; nothing offers them.

use tenantatlas_domain::access::Capability;
use tenantatlas_domain::catalog::{Catalog, IdentityRule, OperationType, ProgressPlan, StaleThresholds, TypeSpec};
use tenantatlas_domain::params::{ParamKind, ParamSpec};

static INVENTORY_SYNC: TypeSpec = TypeSpec::tenant(
    OperationType::InventorySync,
    Capability::SyncInventory,
    ProgressPlan::Counted,
    &[ParamSpec {
        name: "scope",
        kind: ParamKind::Choice(&["all", "policies", "apps", "devices"]),
        required: false,
        default: Some("all"),
        help: "",
    }],
    IdentityRule::AllParams,
);
static BACKUP_SET_CAPTURE: TypeSpec = TypeSpec::tenant(
    OperationType::BackupSetCapture,
    Capability::ManageBackups,
    ProgressPlan::Counted,
    &[ParamSpec::id("backup_set", "")],
    IdentityRule::Params(&["backup_set"]),
);
static BACKUP_SET_ADD: TypeSpec = TypeSpec::tenant(
    OperationType::BackupSetAddPolicies,
    Capability::ManageBackups,
    ProgressPlan::Counted,
    &[
        ParamSpec::id("backup_set", ""),
        ParamSpec::id_list("policies", true, ""),
    ],
    IdentityRule::Params(&["backup_set"]),
);
static BACKUP_SCHEDULE_RUN: TypeSpec = TypeSpec::tenant(
    OperationType::BackupScheduleRun,
    Capability::ManageBackups,
    ProgressPlan::Counted,
    &[ParamSpec::id("schedule", "")],
    IdentityRule::Params(&["schedule"]),
);
static RESTORE_EXECUTE: TypeSpec = TypeSpec {
    max_attempts: 1,
    stale: StaleThresholds {
        heartbeat: std::time::Duration::from_secs(600),
        running_floor: std::time::Duration::from_secs(3600),
        ..StaleThresholds::DEFAULT
    },
    ..TypeSpec::tenant(
        OperationType::RestoreExecute,
        Capability::ExecuteRestore,
        ProgressPlan::Counted,
        &[ParamSpec::id("backup_set", ""), ParamSpec::id_list("items", false, "")],
        IdentityRule::PerTenant,
    )
};
static POLICY_EXPORT: TypeSpec = TypeSpec::tenant(
    OperationType::PolicyExport,
    Capability::ExportPolicies,
    ProgressPlan::Counted,
    &[ParamSpec {
        name: "format",
        kind: ParamKind::Choice(&["json", "csv"]),
        required: false,
        default: Some("json"),
        help: "",
    }],
    IdentityRule::AllParams,
);

/// This build's catalog plus the stand-ins.
pub fn catalog() -> Catalog {
    [
        &INVENTORY_SYNC,
        &BACKUP_SET_CAPTURE,
        &BACKUP_SET_ADD,
        &BACKUP_SCHEDULE_RUN,
        &RESTORE_EXECUTE,
        &POLICY_EXPORT,
    ]
    .into_iter()
    .fold(tenantatlas_ops::catalog(), Catalog::with)
}
