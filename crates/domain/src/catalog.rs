//! The operation-type catalog: every kind of long-running work TenantAtlas
//! does, with what it takes to start it, how its progress is shown, when it
//! is likely stale, and how its identity (law 2) is derived.
//!
//! Adding a type means adding a variant and its [`TypeSpec`]; everything
//! else (start validation, dedupe, staleness, the CLI and API vocabulary)
//! follows from this table.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::FieldError;
use crate::access::Capability;
use crate::params::{ParamKind, ParamSpec, Params, RawParams};

/// A kind of operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OperationType {
    /// Read the tenant's configuration inventory.
    InventorySync,
    /// Capture a backup set.
    BackupSetCapture,
    /// Add policies to a backup set.
    BackupSetAddPolicies,
    /// Remove policies from a backup set.
    BackupSetRemovePolicies,
    /// Run a backup schedule (fans out to captures).
    BackupScheduleRun,
    /// Apply backup retention.
    BackupRetention,
    /// Restore configuration into the tenant.
    RestoreExecute,
    /// Export policies.
    PolicyExport,
    /// Generate drift findings.
    DriftGenerate,
    /// Capture a baseline.
    BaselineCapture,
    /// Compare the tenant with a baseline.
    BaselineCompare,
    /// Generate a review pack.
    ReviewPackGenerate,
    /// Generate an evidence snapshot.
    EvidenceSnapshotGenerate,
    /// Sync Entra ID groups.
    EntraGroupsSync,
    /// Prune product-usage telemetry past retention (system only).
    TelemetryPrune,
    /// A configurable no-op workload for tests, demos and benchmarks.
    Synthetic,
}

/// Whether runs of a type belong to a tenant or to the platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Bound to one tenant of one workspace.
    Tenant,
    /// Platform housekeeping, bound to no tenant; system-initiated only.
    System,
}

/// How a type's progress is shown (law 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressPlan {
    /// It plans a deterministic set of work units.
    Counted,
    /// It moves through this many named phases.
    Phased(u32),
    /// It cannot know its amount of work in advance.
    Indeterminate,
    /// Decided by its parameters (`synthetic`: counted when `units` is set).
    ByParams,
}

/// When an active run of a type is "likely stale" (law 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaleThresholds {
    /// Queued (and due) for longer than this.
    pub queued: Duration,
    /// Running without a heartbeat for longer than this; also the least
    /// time a counted run may go without unit progress.
    pub heartbeat: Duration,
    /// The least a run may take before its duration alone makes it look
    /// stuck (the floor of the adaptive threshold, see
    /// [`crate::problem::adaptive_running_max`]).
    pub running_floor: Duration,
    /// Running longer than this (without counted progress) is likely
    /// stale. Learned from recent successful runs; `None` until there are
    /// enough of them.
    pub running_max: Option<Duration>,
}

/// How a run's identity key is derived from its parameters (law 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityRule {
    /// One active run per tenant, whatever the parameters.
    PerTenant,
    /// One active run per value of these parameters.
    Params(&'static [&'static str]),
    /// One active run per complete parameter set.
    AllParams,
    /// Per value of this parameter when given; otherwise every run is unique.
    ParamOrUnique(&'static str),
}

/// A run's identity key, as derived from its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityKey {
    /// A stable key: starts with the same key dedupe.
    Stable(String),
    /// Never deduped: the store gives the run a key of its own.
    Unique,
}

/// Everything the catalog knows about one operation type.
#[derive(Clone, Copy, Debug)]
pub struct TypeSpec {
    /// The stable name (`inventory.sync`).
    pub name: &'static str,
    /// What people read (`Inventory sync`).
    pub label: &'static str,
    /// Tenant-bound or system.
    pub scope: Scope,
    /// The capability a user needs to start it; `None`: only the system may.
    pub start_capability: Option<Capability>,
    /// How progress is shown.
    pub progress: ProgressPlan,
    /// When active runs are likely stale.
    pub stale: StaleThresholds,
    /// How many times a run may be attempted (retries = attempts - 1).
    pub max_attempts: u32,
    /// Whether it needs the tenant's provider connection.
    pub needs_provider: bool,
    /// Accepted parameters.
    pub params: &'static [ParamSpec],
    /// How the identity key is derived.
    pub identity: IdentityRule,
}

const fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

const NORMAL: StaleThresholds = StaleThresholds {
    queued: mins(15),
    heartbeat: mins(5),
    running_floor: mins(30),
    running_max: None,
};

const fn id(name: &'static str, help: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        kind: ParamKind::Id,
        required: true,
        default: None,
        help,
    }
}

const fn id_list(name: &'static str, required: bool, help: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        kind: ParamKind::IdList,
        required,
        default: None,
        help,
    }
}

const fn spec(
    name: &'static str,
    label: &'static str,
    cap: Capability,
    progress: ProgressPlan,
    params: &'static [ParamSpec],
    identity: IdentityRule,
) -> TypeSpec {
    TypeSpec {
        name,
        label,
        scope: Scope::Tenant,
        start_capability: Some(cap),
        progress,
        stale: NORMAL,
        max_attempts: 3,
        needs_provider: true,
        params,
        identity,
    }
}

const BACKUP_SET: ParamSpec = id("backup_set", "the backup set");
const BASELINE: ParamSpec = id("baseline", "the baseline");

static INVENTORY_SYNC: TypeSpec = spec(
    "inventory.sync",
    "Inventory sync",
    Capability::SyncInventory,
    ProgressPlan::Counted,
    &[ParamSpec {
        name: "scope",
        kind: ParamKind::Choice(&["all", "policies", "apps", "devices"]),
        required: false,
        default: Some("all"),
        help: "what to sync",
    }],
    IdentityRule::AllParams,
);
static BACKUP_SET_CAPTURE: TypeSpec = spec(
    "backup_set.capture",
    "Backup capture",
    Capability::ManageBackups,
    ProgressPlan::Counted,
    &[BACKUP_SET],
    IdentityRule::Params(&["backup_set"]),
);
static BACKUP_SET_ADD: TypeSpec = spec(
    "backup_set.add_policies",
    "Add policies to backup set",
    Capability::ManageBackups,
    ProgressPlan::Counted,
    &[BACKUP_SET, id_list("policies", true, "policy ids to add")],
    IdentityRule::Params(&["backup_set"]),
);
static BACKUP_SET_REMOVE: TypeSpec = spec(
    "backup_set.remove_policies",
    "Remove policies from backup set",
    Capability::ManageBackups,
    ProgressPlan::Counted,
    &[BACKUP_SET, id_list("policies", true, "policy ids to remove")],
    IdentityRule::Params(&["backup_set"]),
);
static BACKUP_SCHEDULE_RUN: TypeSpec = spec(
    "backup_schedule.run",
    "Scheduled backup",
    Capability::ManageBackups,
    ProgressPlan::Counted,
    &[id("schedule", "the backup schedule")],
    IdentityRule::Params(&["schedule"]),
);
static BACKUP_RETENTION: TypeSpec = TypeSpec {
    needs_provider: false,
    ..spec(
        "backup.retention",
        "Backup retention",
        Capability::ManageBackups,
        ProgressPlan::Counted,
        &[ParamSpec {
            name: "keep_days",
            kind: ParamKind::Int { min: 1, max: 3650 },
            required: false,
            default: None,
            help: "override the retention period",
        }],
        IdentityRule::PerTenant,
    )
};
static RESTORE_EXECUTE: TypeSpec = TypeSpec {
    // A restore writes into the tenant: one at a time per tenant, no
    // automatic retries, more patience per item.
    max_attempts: 1,
    stale: StaleThresholds {
        queued: mins(15),
        heartbeat: mins(10),
        running_floor: mins(60),
        running_max: None,
    },
    ..spec(
        "restore.execute",
        "Restore",
        Capability::ExecuteRestore,
        ProgressPlan::Counted,
        &[
            BACKUP_SET,
            id_list("items", false, "restore only these items"),
            ParamSpec {
                name: "dry_run",
                kind: ParamKind::Bool,
                required: false,
                default: Some("false"),
                help: "preview without writing",
            },
        ],
        IdentityRule::PerTenant,
    )
};
static POLICY_EXPORT: TypeSpec = spec(
    "policy.export",
    "Policy export",
    Capability::ExportPolicies,
    ProgressPlan::Counted,
    &[ParamSpec {
        name: "format",
        kind: ParamKind::Choice(&["json", "csv"]),
        required: false,
        default: Some("json"),
        help: "export format",
    }],
    IdentityRule::AllParams,
);
static DRIFT_GENERATE: TypeSpec = spec(
    "drift.generate",
    "Drift detection",
    Capability::RunDrift,
    ProgressPlan::Phased(3),
    &[ParamSpec {
        name: "baseline",
        kind: ParamKind::Id,
        required: false,
        default: None,
        help: "compare against this baseline instead of the last capture",
    }],
    IdentityRule::AllParams,
);
static BASELINE_CAPTURE: TypeSpec = spec(
    "baseline.capture",
    "Baseline capture",
    Capability::ManageBaselines,
    ProgressPlan::Phased(3),
    &[BASELINE],
    IdentityRule::Params(&["baseline"]),
);
static BASELINE_COMPARE: TypeSpec = spec(
    "baseline.compare",
    "Baseline compare",
    Capability::RunDrift,
    ProgressPlan::Phased(3),
    &[BASELINE],
    IdentityRule::Params(&["baseline"]),
);
static REVIEW_PACK_GENERATE: TypeSpec = TypeSpec {
    needs_provider: false,
    ..spec(
        "review_pack.generate",
        "Review pack",
        Capability::GenerateReviews,
        ProgressPlan::Counted,
        &[id_list("sections", false, "include only these sections")],
        IdentityRule::AllParams,
    )
};
static EVIDENCE_SNAPSHOT_GENERATE: TypeSpec = TypeSpec {
    needs_provider: false,
    ..spec(
        "evidence_snapshot.generate",
        "Evidence snapshot",
        Capability::GenerateReviews,
        ProgressPlan::Counted,
        &[],
        IdentityRule::PerTenant,
    )
};
static ENTRA_GROUPS_SYNC: TypeSpec = spec(
    "entra_groups.sync",
    "Entra groups sync",
    Capability::SyncInventory,
    ProgressPlan::Indeterminate,
    &[],
    IdentityRule::PerTenant,
);
static TELEMETRY_PRUNE: TypeSpec = TypeSpec {
    name: "telemetry.prune",
    label: "Telemetry retention prune",
    scope: Scope::System,
    start_capability: None,
    progress: ProgressPlan::Indeterminate,
    stale: NORMAL,
    max_attempts: 3,
    needs_provider: false,
    params: &[],
    identity: IdentityRule::PerTenant,
};
static SYNTHETIC: TypeSpec = TypeSpec {
    stale: StaleThresholds {
        queued: mins(5),
        heartbeat: Duration::from_secs(60),
        running_floor: mins(5),
        running_max: None,
    },
    needs_provider: false,
    ..spec(
        "synthetic",
        "Synthetic workload",
        Capability::StartSynthetic,
        ProgressPlan::ByParams,
        &[
            ParamSpec {
                name: "units",
                kind: ParamKind::Int { min: 0, max: 1_000_000 },
                required: false,
                default: None,
                help: "planned unit count (0 completes at once; omitted: indeterminate)",
            },
            ParamSpec {
                name: "unit_ms",
                kind: ParamKind::Int { min: 0, max: 600_000 },
                required: false,
                default: Some("0"),
                help: "time per unit",
            },
            ParamSpec {
                name: "fail_every",
                kind: ParamKind::Int { min: 1, max: 1_000_000 },
                required: false,
                default: None,
                help: "every k-th unit fails",
            },
            ParamSpec {
                name: "duration_ms",
                kind: ParamKind::Int {
                    min: 0,
                    max: 86_400_000,
                },
                required: false,
                default: Some("0"),
                help: "how long an indeterminate run works",
            },
            ParamSpec {
                name: "key",
                kind: ParamKind::Id,
                required: false,
                default: None,
                help: "identity: same key and tenant dedupe while one is active",
            },
            ParamSpec {
                name: "fail_attempts",
                kind: ParamKind::Int { min: 0, max: 10 },
                required: false,
                default: None,
                help: "the first N attempts fail with a retryable error (tests retries)",
            },
            ParamSpec {
                name: "panic",
                kind: ParamKind::Bool,
                required: false,
                default: None,
                help: "the handler panics (tests that a worker survives one)",
            },
        ],
        IdentityRule::ParamOrUnique("key"),
    )
};

impl OperationType {
    /// Every type.
    pub const ALL: [OperationType; 16] = [
        OperationType::InventorySync,
        OperationType::BackupSetCapture,
        OperationType::BackupSetAddPolicies,
        OperationType::BackupSetRemovePolicies,
        OperationType::BackupScheduleRun,
        OperationType::BackupRetention,
        OperationType::RestoreExecute,
        OperationType::PolicyExport,
        OperationType::DriftGenerate,
        OperationType::BaselineCapture,
        OperationType::BaselineCompare,
        OperationType::ReviewPackGenerate,
        OperationType::EvidenceSnapshotGenerate,
        OperationType::EntraGroupsSync,
        OperationType::TelemetryPrune,
        OperationType::Synthetic,
    ];

    /// The catalog entry.
    pub fn spec(self) -> &'static TypeSpec {
        match self {
            OperationType::InventorySync => &INVENTORY_SYNC,
            OperationType::BackupSetCapture => &BACKUP_SET_CAPTURE,
            OperationType::BackupSetAddPolicies => &BACKUP_SET_ADD,
            OperationType::BackupSetRemovePolicies => &BACKUP_SET_REMOVE,
            OperationType::BackupScheduleRun => &BACKUP_SCHEDULE_RUN,
            OperationType::BackupRetention => &BACKUP_RETENTION,
            OperationType::RestoreExecute => &RESTORE_EXECUTE,
            OperationType::PolicyExport => &POLICY_EXPORT,
            OperationType::DriftGenerate => &DRIFT_GENERATE,
            OperationType::BaselineCapture => &BASELINE_CAPTURE,
            OperationType::BaselineCompare => &BASELINE_COMPARE,
            OperationType::ReviewPackGenerate => &REVIEW_PACK_GENERATE,
            OperationType::EvidenceSnapshotGenerate => &EVIDENCE_SNAPSHOT_GENERATE,
            OperationType::EntraGroupsSync => &ENTRA_GROUPS_SYNC,
            OperationType::TelemetryPrune => &TELEMETRY_PRUNE,
            OperationType::Synthetic => &SYNTHETIC,
        }
    }

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// Parses a type name, naming `field` on failure.
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        Self::ALL.into_iter().find(|t| t.as_str() == s.trim()).ok_or_else(|| {
            FieldError::new(
                field,
                format!(
                    "unknown operation type {:?}; known types: {}",
                    s.chars().take(64).collect::<String>(),
                    Self::ALL.map(|t| t.as_str()).join(", ")
                ),
            )
        })
    }

    /// Parses and validates start parameters for this type.
    pub fn parse_params(self, raw: RawParams<'_>) -> Result<Params, FieldError> {
        Params::parse(self.spec().params, raw)
    }

    /// Derives the identity key (law 2) from validated parameters.
    pub fn identity_key(self, params: &Params) -> IdentityKey {
        let canonical = |names: &mut dyn Iterator<Item = &str>| -> String {
            names
                .filter_map(|n| params.get(n).map(|v| format!("{n}={}", v.canonical())))
                .collect::<Vec<_>>()
                .join(";")
        };
        let key = match self.spec().identity {
            IdentityRule::PerTenant => String::from("tenant"),
            IdentityRule::Params(names) => canonical(&mut names.iter().copied()),
            IdentityRule::AllParams => {
                let all = canonical(&mut params.iter().map(|(n, _)| n));
                if all.is_empty() { String::from("tenant") } else { all }
            }
            IdentityRule::ParamOrUnique(name) => match params.get(name) {
                Some(v) => format!("{name}={}", v.canonical()),
                None => return IdentityKey::Unique,
            },
        };
        IdentityKey::Stable(bounded_key(key))
    }

    /// How this run's progress is shown, given its parameters.
    pub fn progress_plan(self, params: &Params) -> ProgressPlan {
        match self.spec().progress {
            ProgressPlan::ByParams if params.int("units").is_some() => ProgressPlan::Counted,
            ProgressPlan::ByParams => ProgressPlan::Indeterminate,
            other => other,
        }
    }
}

/// A set of operation types: the ones a build can execute (those with a
/// handler), which are the only ones it offers and accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypeSet(u32);

impl TypeSet {
    /// No type.
    pub const EMPTY: TypeSet = TypeSet(0);

    const fn bit(op: OperationType) -> u32 {
        1 << op as u32
    }

    /// This set with `op` in it.
    #[must_use]
    pub const fn with(self, op: OperationType) -> TypeSet {
        TypeSet(self.0 | Self::bit(op))
    }

    /// Whether `op` is in the set.
    pub const fn contains(self, op: OperationType) -> bool {
        self.0 & Self::bit(op) != 0
    }

    /// The types in the set, in catalog order.
    pub fn iter(self) -> impl Iterator<Item = OperationType> {
        OperationType::ALL.into_iter().filter(move |op| self.contains(*op))
    }
}

impl FromIterator<OperationType> for TypeSet {
    fn from_iter<I: IntoIterator<Item = OperationType>>(iter: I) -> Self {
        iter.into_iter().fold(TypeSet::EMPTY, TypeSet::with)
    }
}

/// Keys longer than 200 characters are replaced by a digest so the unique
/// index stays small; short keys stay readable.
fn bounded_key(key: String) -> String {
    const MAX: usize = 200;
    if key.len() <= MAX {
        return key;
    }
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl fmt::Display for OperationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for OperationType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NAMES: [&str; 16] = [
        "inventory.sync",
        "backup_set.capture",
        "backup_set.add_policies",
        "backup_set.remove_policies",
        "backup_schedule.run",
        "backup.retention",
        "restore.execute",
        "policy.export",
        "drift.generate",
        "baseline.capture",
        "baseline.compare",
        "review_pack.generate",
        "evidence_snapshot.generate",
        "entra_groups.sync",
        "telemetry.prune",
        "synthetic",
    ];

    #[test]
    fn a_type_set_holds_what_was_put_in_and_nothing_else() {
        let set: TypeSet = [OperationType::Synthetic, OperationType::InventorySync]
            .into_iter()
            .collect();
        assert!(set.contains(OperationType::Synthetic));
        assert!(set.contains(OperationType::InventorySync));
        assert!(!set.contains(OperationType::RestoreExecute));
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [OperationType::InventorySync, OperationType::Synthetic]
        );
        assert!(OperationType::ALL.iter().all(|op| !TypeSet::EMPTY.contains(*op)));
        let all: TypeSet = OperationType::ALL.into_iter().collect();
        assert_eq!(all.iter().count(), OperationType::ALL.len());
    }

    #[test]
    fn the_stable_names_are_exactly_the_catalog() {
        let names: Vec<_> = OperationType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(names, NAMES);
        for n in NAMES {
            assert_eq!(OperationType::parse("type", n).unwrap().as_str(), n);
        }
        let e = OperationType::parse("type", "inventory.sink").unwrap_err();
        assert_eq!(e.field, "type");
        assert!(e.rule.contains("known types: inventory.sync"));
    }

    #[test]
    fn every_spec_is_coherent() {
        for t in OperationType::ALL {
            let s = t.spec();
            assert!(!s.label.is_empty());
            assert!(s.max_attempts >= 1);
            assert!(s.stale.heartbeat >= Duration::from_secs(30), "{}", s.name);
            assert_eq!(s.scope == Scope::System, s.start_capability.is_none(), "{}", s.name);
            // identity parameters exist
            if let IdentityRule::Params(names) = s.identity {
                for n in names {
                    assert!(s.params.iter().any(|p| p.name == *n && p.required), "{}: {n}", s.name);
                }
            }
            if let IdentityRule::ParamOrUnique(n) = s.identity {
                assert!(s.params.iter().any(|p| p.name == n), "{}: {n}", s.name);
            }
            // defaults parse under their own spec
            let p = t.parse_params(RawParams::Json(&json!({}))).map(|_| ());
            if s.params.iter().all(|p| !p.required) {
                assert!(p.is_ok(), "{}", s.name);
            }
        }
    }

    #[test]
    fn identity_keys_are_derived_from_parameters() {
        let p = |t: OperationType, v: serde_json::Value| t.parse_params(RawParams::Json(&v)).unwrap();
        let t = OperationType::BackupSetAddPolicies;
        let a = t.identity_key(&p(t, json!({"backup_set": "b1", "policies": ["x"]})));
        let b = t.identity_key(&p(t, json!({"backup_set": "b1", "policies": ["y", "z"]})));
        assert_eq!(a, b, "one mutation per backup set at a time");
        assert_eq!(a, IdentityKey::Stable("backup_set=b1".into()));

        let inv = OperationType::InventorySync;
        assert_eq!(
            inv.identity_key(&p(inv, json!({}))),
            inv.identity_key(&p(inv, json!({"scope": "all"})))
        );
        assert_ne!(
            inv.identity_key(&p(inv, json!({}))),
            inv.identity_key(&p(inv, json!({"scope": "apps"})))
        );

        let syn = OperationType::Synthetic;
        assert_eq!(syn.identity_key(&p(syn, json!({"units": 3}))), IdentityKey::Unique);
        assert_eq!(
            syn.identity_key(&p(syn, json!({"key": "k"}))),
            IdentityKey::Stable("key=k".into())
        );

        let r = OperationType::RestoreExecute;
        assert_eq!(
            r.identity_key(&p(r, json!({"backup_set": "a"}))),
            IdentityKey::Stable("tenant".into())
        );

        let rp = OperationType::ReviewPackGenerate;
        let many: Vec<String> = (0..100).map(|i| format!("section-{i:03}")).collect();
        match rp.identity_key(&p(rp, json!({ "sections": many }))) {
            IdentityKey::Stable(k) => assert!(k.starts_with("sha256:") && k.len() < 60, "{k}"),
            IdentityKey::Unique => panic!("review packs dedupe"),
        }
    }

    #[test]
    fn synthetic_progress_depends_on_units() {
        let syn = OperationType::Synthetic;
        let counted = syn.parse_params(RawParams::Json(&json!({"units": 0}))).unwrap();
        let indet = syn.parse_params(RawParams::Json(&json!({"duration_ms": 10}))).unwrap();
        assert_eq!(syn.progress_plan(&counted), ProgressPlan::Counted);
        assert_eq!(syn.progress_plan(&indet), ProgressPlan::Indeterminate);
        assert_eq!(
            OperationType::DriftGenerate.progress_plan(&Params::empty()),
            ProgressPlan::Phased(3)
        );
    }
}
