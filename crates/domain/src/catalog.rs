//! The operation-type vocabulary and the shape of a type's spec.
//!
//! [`OperationType`] names every kind of long-running work TenantAtlas
//! knows, with its stable name and label: the ledger's vocabulary, which
//! must name and label every run ever recorded — also runs of a type this
//! build cannot execute. What it takes to *run* a type — its [`TypeSpec`]
//! (capability, parameters, identity rule, progress plan, stale
//! thresholds, attempts) — lives with its typed parameters and its handler
//! in the type's module of the `ops` crate; a build's [`Catalog`] holds the
//! specs of the types it has handlers for.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::FieldError;
use crate::access::Capability;
use crate::params::{ParamSpec, Params, RawParams};

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
    /// Check a tenant's provider connection: sign-in, one read per object
    /// type, the permissions granted against those required.
    ProviderVerify,
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
    /// Counted when this parameter is given, indeterminate otherwise
    /// (`synthetic` with or without `units`).
    CountedWhen(&'static str),
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

/// Everything the engine needs to know to start, show, reconcile and
/// retry runs of one operation type. Each value lives in the type's module
/// of the `ops` crate, beside its typed parameters and its handler; the
/// engine learns the specs of a build from its handler registry
/// ([`Catalog`]).
#[derive(Clone, Copy, Debug)]
pub struct TypeSpec {
    /// The type.
    pub op: OperationType,
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
    /// Whether a run whose node died mid-attempt may simply be attempted
    /// again (law 7): its handler skips the units it finished and repeats
    /// nothing it must not. Otherwise such a run is reconciled as failed.
    pub resumable: bool,
    /// Whether it needs the tenant's provider connection.
    pub needs_provider: bool,
    /// Accepted parameters.
    pub params: &'static [ParamSpec],
    /// How the identity key is derived.
    pub identity: IdentityRule,
    /// The cross-field check of its typed parameters.
    pub check: ParamsCheck,
    /// When set, starts are refused unless the process opted in to such
    /// types (`synthetic`: tests, demos and benchmarks); the text says how.
    pub opt_in: Option<&'static str>,
    /// The schedule every node keeps for it, if any (system types).
    pub schedule: Option<SystemSchedule>,
    /// Values a start form fills in for people (`(parameter, value)`);
    /// what a form leaves empty takes the parameter's default.
    pub suggested: &'static [(&'static str, &'static str)],
}

const fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

impl StaleThresholds {
    /// The thresholds of a type that says nothing else (and of a run whose
    /// type this build has no spec for).
    pub const DEFAULT: StaleThresholds = StaleThresholds {
        queued: mins(15),
        heartbeat: mins(5),
        running_floor: mins(30),
        running_max: None,
    };
}

/// A schedule every node keeps for a system type (`telemetry.prune`
/// daily): created when missing, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemSchedule {
    /// The schedule's name.
    pub name: &'static str,
    /// When it fires (five-field cron, UTC).
    pub cron: &'static str,
}

/// Checks validated parameters against a type's typed parameters: the
/// cross-field rules a flat [`ParamSpec`] list cannot say. It is
/// [`accepts`] of the type's parameter struct, so the edge and the
/// handler parse with the same code.
pub type ParamsCheck = fn(&Params) -> Result<(), FieldError>;

/// The [`ParamsCheck`] of a typed parameter struct `P`.
pub fn accepts<P>(params: &Params) -> Result<(), FieldError>
where
    P: for<'a> TryFrom<&'a Params, Error = FieldError>,
{
    P::try_from(params).map(drop)
}

fn accepts_anything(_: &Params) -> Result<(), FieldError> {
    Ok(())
}

impl TypeSpec {
    /// The usual shape: a tenant operation users with `cap` may start, run
    /// up to three times, with the default stale thresholds, needing the
    /// tenant's provider, always available, not resumable after a crash. Adjust with struct update
    /// syntax.
    pub const fn tenant(
        op: OperationType,
        cap: Capability,
        progress: ProgressPlan,
        params: &'static [ParamSpec],
        identity: IdentityRule,
    ) -> TypeSpec {
        TypeSpec {
            op,
            scope: Scope::Tenant,
            start_capability: Some(cap),
            progress,
            stale: StaleThresholds::DEFAULT,
            max_attempts: 3,
            resumable: false,
            needs_provider: true,
            params,
            identity,
            check: accepts_anything,
            opt_in: None,
            schedule: None,
            suggested: &[],
        }
    }

    /// A system operation: no tenant, no user may start it, no parameters.
    pub const fn system(op: OperationType, progress: ProgressPlan) -> TypeSpec {
        TypeSpec {
            op,
            scope: Scope::System,
            start_capability: None,
            progress,
            stale: StaleThresholds::DEFAULT,
            max_attempts: 3,
            resumable: false,
            needs_provider: false,
            params: &[],
            identity: IdentityRule::PerTenant,
            check: accepts_anything,
            opt_in: None,
            schedule: None,
            suggested: &[],
        }
    }

    /// The stable name.
    pub fn name(&self) -> &'static str {
        self.op.as_str()
    }

    /// Parses and validates start parameters: each against its
    /// [`ParamSpec`], then together by the type's [`ParamsCheck`].
    pub fn parse_params(&self, raw: RawParams<'_>) -> Result<Params, FieldError> {
        let params = Params::parse(self.params, raw)?;
        (self.check)(&params)?;
        Ok(params)
    }

    /// Derives the identity key (law 2) from validated parameters.
    pub fn identity_key(&self, params: &Params) -> IdentityKey {
        let canonical = |names: &mut dyn Iterator<Item = &str>| -> String {
            names
                .filter_map(|n| params.get(n).map(|v| format!("{n}={}", v.canonical())))
                .collect::<Vec<_>>()
                .join(";")
        };
        let key = match self.identity {
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

    /// How a run's progress is shown, given its parameters.
    pub fn progress_plan(&self, params: &Params) -> ProgressPlan {
        match self.progress {
            ProgressPlan::CountedWhen(name) if params.get(name).is_some() => ProgressPlan::Counted,
            ProgressPlan::CountedWhen(_) => ProgressPlan::Indeterminate,
            other => other,
        }
    }
}

impl OperationType {
    /// Every type.
    pub const ALL: [OperationType; 17] = [
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
        OperationType::ProviderVerify,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationType::InventorySync => "inventory.sync",
            OperationType::BackupSetCapture => "backup_set.capture",
            OperationType::BackupSetAddPolicies => "backup_set.add_policies",
            OperationType::BackupSetRemovePolicies => "backup_set.remove_policies",
            OperationType::BackupScheduleRun => "backup_schedule.run",
            OperationType::BackupRetention => "backup.retention",
            OperationType::RestoreExecute => "restore.execute",
            OperationType::PolicyExport => "policy.export",
            OperationType::DriftGenerate => "drift.generate",
            OperationType::BaselineCapture => "baseline.capture",
            OperationType::BaselineCompare => "baseline.compare",
            OperationType::ReviewPackGenerate => "review_pack.generate",
            OperationType::EvidenceSnapshotGenerate => "evidence_snapshot.generate",
            OperationType::EntraGroupsSync => "entra_groups.sync",
            OperationType::TelemetryPrune => "telemetry.prune",
            OperationType::Synthetic => "synthetic",
            OperationType::ProviderVerify => "provider.verify",
        }
    }

    /// What people read (`Inventory sync`).
    pub fn label(self) -> &'static str {
        match self {
            OperationType::InventorySync => "Inventory sync",
            OperationType::BackupSetCapture => "Backup capture",
            OperationType::BackupSetAddPolicies => "Add policies to backup set",
            OperationType::BackupSetRemovePolicies => "Remove policies from backup set",
            OperationType::BackupScheduleRun => "Scheduled backup",
            OperationType::BackupRetention => "Backup retention",
            OperationType::RestoreExecute => "Restore",
            OperationType::PolicyExport => "Policy export",
            OperationType::DriftGenerate => "Drift detection",
            OperationType::BaselineCapture => "Baseline capture",
            OperationType::BaselineCompare => "Baseline compare",
            OperationType::ReviewPackGenerate => "Review pack",
            OperationType::EvidenceSnapshotGenerate => "Evidence snapshot",
            OperationType::EntraGroupsSync => "Entra groups sync",
            OperationType::TelemetryPrune => "Telemetry retention prune",
            OperationType::Synthetic => "Synthetic workload",
            OperationType::ProviderVerify => "Connection check",
        }
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

/// The specs of the types a build can execute, by type: what its handler
/// registry holds. A type without a spec here is not offered, not started
/// and not claimed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Catalog {
    specs: [Option<&'static TypeSpec>; OperationType::ALL.len()],
}

impl Catalog {
    /// No type.
    pub const EMPTY: Catalog = Catalog {
        specs: [None; OperationType::ALL.len()],
    };

    /// This catalog with `spec` in it (replacing an earlier spec of its type).
    #[must_use]
    pub const fn with(mut self, spec: &'static TypeSpec) -> Catalog {
        self.specs[spec.op as usize] = Some(spec);
        self
    }

    /// The spec of `op`, when this build has it.
    pub const fn spec(&self, op: OperationType) -> Option<&'static TypeSpec> {
        self.specs[op as usize]
    }

    /// The types it holds.
    pub fn types(&self) -> TypeSet {
        self.iter().map(|s| s.op).collect()
    }

    /// Its specs, in catalog order.
    pub fn iter(&self) -> impl Iterator<Item = &'static TypeSpec> + '_ {
        self.specs.iter().filter_map(|s| *s)
    }
}

impl FromIterator<&'static TypeSpec> for Catalog {
    fn from_iter<I: IntoIterator<Item = &'static TypeSpec>>(iter: I) -> Self {
        iter.into_iter().fold(Catalog::EMPTY, Catalog::with)
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
    use crate::params::ParamKind;
    use serde_json::json;

    const NAMES: [&str; 17] = [
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
        "provider.verify",
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

    static PER_SET: TypeSpec = TypeSpec::tenant(
        OperationType::BackupSetAddPolicies,
        Capability::ManageBackups,
        ProgressPlan::Counted,
        &[
            ParamSpec::id("backup_set", ""),
            ParamSpec::id_list("policies", false, ""),
        ],
        IdentityRule::Params(&["backup_set"]),
    );
    static ALL_PARAMS: TypeSpec = TypeSpec::tenant(
        OperationType::InventorySync,
        Capability::SyncInventory,
        ProgressPlan::Counted,
        &[ParamSpec {
            name: "scope",
            kind: ParamKind::Choice(&["all", "apps"]),
            required: false,
            default: Some("all"),
            help: "",
        }],
        IdentityRule::AllParams,
    );
    static MANY: TypeSpec = TypeSpec::tenant(
        OperationType::ReviewPackGenerate,
        Capability::GenerateReviews,
        ProgressPlan::Counted,
        &[ParamSpec::id_list("sections", false, "")],
        IdentityRule::AllParams,
    );
    static PER_TENANT: TypeSpec = TypeSpec::tenant(
        OperationType::RestoreExecute,
        Capability::ExecuteRestore,
        ProgressPlan::Counted,
        &[ParamSpec::id("backup_set", "")],
        IdentityRule::PerTenant,
    );

    /// `units` and `fail_every` together: `fail_every` needs `units`.
    struct Typed;
    impl TryFrom<&Params> for Typed {
        type Error = FieldError;
        fn try_from(p: &Params) -> Result<Self, FieldError> {
            if p.int("fail_every").is_some() && p.int("units").is_none() {
                return Err(FieldError::new("params.fail_every", "needs params.units"));
            }
            Ok(Typed)
        }
    }
    static BY_UNITS: TypeSpec = TypeSpec {
        check: accepts::<Typed>,
        ..TypeSpec::tenant(
            OperationType::Synthetic,
            Capability::StartSynthetic,
            ProgressPlan::CountedWhen("units"),
            &[
                ParamSpec {
                    name: "units",
                    kind: ParamKind::Int { min: 0, max: 10 },
                    required: false,
                    default: None,
                    help: "",
                },
                ParamSpec {
                    name: "fail_every",
                    kind: ParamKind::Int { min: 1, max: 10 },
                    required: false,
                    default: None,
                    help: "",
                },
                ParamSpec {
                    required: false,
                    ..ParamSpec::id("key", "")
                },
            ],
            IdentityRule::ParamOrUnique("key"),
        )
    };

    fn p(spec: &TypeSpec, v: serde_json::Value) -> Params {
        spec.parse_params(RawParams::Json(&v)).unwrap()
    }

    #[test]
    fn a_catalog_holds_one_spec_per_type() {
        let c: Catalog = [&PER_SET, &ALL_PARAMS, &BY_UNITS].into_iter().collect();
        assert_eq!(
            c.spec(OperationType::InventorySync).map(|s| s.op),
            Some(OperationType::InventorySync)
        );
        assert!(c.spec(OperationType::RestoreExecute).is_none());
        assert_eq!(
            c.types().iter().collect::<Vec<_>>(),
            [
                OperationType::InventorySync,
                OperationType::BackupSetAddPolicies,
                OperationType::Synthetic
            ]
        );
        assert_eq!(Catalog::EMPTY.types(), TypeSet::EMPTY);
        assert_eq!(c.with(&PER_TENANT).iter().count(), 4);
    }

    #[test]
    fn parameters_pass_their_specs_and_then_the_typed_check() {
        let e = BY_UNITS
            .parse_params(RawParams::Json(&json!({"fail_every": 2})))
            .unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.rule.as_str()),
            ("params.fail_every", "needs params.units")
        );
        let e = BY_UNITS
            .parse_params(RawParams::Json(&json!({"units": 11})))
            .unwrap_err();
        assert_eq!(e.field, "params.units", "each value is checked against its spec first");
        assert!(
            BY_UNITS
                .parse_params(RawParams::Json(&json!({"units": 3, "fail_every": 2})))
                .is_ok()
        );
    }

    #[test]
    fn identity_keys_are_derived_from_parameters() {
        let a = PER_SET.identity_key(&p(&PER_SET, json!({"backup_set": "b1", "policies": ["x"]})));
        let b = PER_SET.identity_key(&p(&PER_SET, json!({"backup_set": "b1", "policies": ["y", "z"]})));
        assert_eq!(a, b, "one mutation per backup set at a time");
        assert_eq!(a, IdentityKey::Stable("backup_set=b1".into()));

        let inv = &ALL_PARAMS;
        assert_eq!(
            inv.identity_key(&p(inv, json!({}))),
            inv.identity_key(&p(inv, json!({"scope": "all"})))
        );
        assert_ne!(
            inv.identity_key(&p(inv, json!({}))),
            inv.identity_key(&p(inv, json!({"scope": "apps"})))
        );

        assert_eq!(
            BY_UNITS.identity_key(&p(&BY_UNITS, json!({"units": 3}))),
            IdentityKey::Unique
        );
        assert_eq!(
            BY_UNITS.identity_key(&p(&BY_UNITS, json!({"key": "k"}))),
            IdentityKey::Stable("key=k".into())
        );

        assert_eq!(
            PER_TENANT.identity_key(&p(&PER_TENANT, json!({"backup_set": "a"}))),
            IdentityKey::Stable("tenant".into())
        );

        let many: Vec<String> = (0..100).map(|i| format!("section-{i:03}")).collect();
        match MANY.identity_key(&p(&MANY, json!({ "sections": many }))) {
            IdentityKey::Stable(k) => assert!(k.starts_with("sha256:") && k.len() < 60, "{k}"),
            IdentityKey::Unique => panic!("review packs dedupe"),
        }
    }

    #[test]
    fn a_progress_plan_may_depend_on_a_parameter() {
        assert_eq!(
            BY_UNITS.progress_plan(&p(&BY_UNITS, json!({"units": 0}))),
            ProgressPlan::Counted
        );
        assert_eq!(BY_UNITS.progress_plan(&Params::empty()), ProgressPlan::Indeterminate);
        assert_eq!(PER_SET.progress_plan(&Params::empty()), ProgressPlan::Counted);
    }
}
