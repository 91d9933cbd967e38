//! A connection check's answer (`provider.verify`).
//!
//! Each check is one unit of the check's run, keyed so that the keys sort
//! in the order the checks are made; [`report`] reads the answer back from
//! the run's unit ledger, so the CLI, the API and the hub show the same
//! answer and it never needs a store of its own.

use serde::Serialize;

use crate::progress::UnitOutcome;
use crate::reason::{Failure, ReasonCode};
use crate::run::UnitRecord;

/// The unit of the sign-in check.
pub const SIGN_IN: &str = "1.00 sign-in";

/// The unit of the read check of the `i`-th object type checked.
pub fn read_key(i: usize, object_type: &str) -> String {
    format!("2.{i:02} read {object_type}")
}

/// The unit of the check of the `i`-th required permission.
pub fn permission_key(i: usize, permission: &str) -> String {
    format!("3.{i:02} permission {permission}")
}

/// One check of a connection check's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `sign-in`, `read device_configuration`, `permission Group.Read.All`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// Why not.
    pub reason_code: Option<String>,
    /// What happened.
    pub message: String,
}

/// A connection check's answer, as CONTRACT.md prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Every check passed.
    pub ok: bool,
    /// `directory` or `graph`.
    pub provider: String,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// The permissions the app lacks.
    pub missing_permissions: Vec<String>,
}

/// The answer of a finished check, from its unit ledger (and the run's own
/// failure when it ended before it planned its checks: no provider, no
/// credentials, a folder that does not load).
pub fn report(provider: &str, units: &[UnitRecord], run_failure: Option<&Failure>) -> Report {
    let mut units: Vec<&UnitRecord> = units.iter().collect();
    units.sort_by(|a, b| a.unit_key.cmp(&b.unit_key));
    let mut checks = Vec::new();
    let mut missing = Vec::new();
    for u in units {
        let name = u
            .unit_key
            .split_once(' ')
            .map_or(u.unit_key.as_str(), |(_, n)| n)
            .to_owned();
        let ok = u.outcome == Some(UnitOutcome::Succeeded);
        let message = match (u.outcome, &u.message) {
            (_, Some(m)) => m.as_str().to_owned(),
            (Some(UnitOutcome::Succeeded), None) => "ok".to_owned(),
            (Some(UnitOutcome::Skipped), None) => "not checked: sign-in failed".to_owned(),
            _ => "not checked".to_owned(),
        };
        if !ok
            && u.reason_code == Some(ReasonCode::ProviderPermissionMissing)
            && let Some(p) = name.strip_prefix("permission ")
        {
            missing.push(p.to_owned());
        }
        checks.push(Check {
            name,
            ok,
            reason_code: u.reason_code.map(|c| c.as_str().to_owned()),
            message,
        });
    }
    if checks.is_empty()
        && let Some(f) = run_failure
    {
        checks.push(Check {
            name: "connect".into(),
            ok: false,
            reason_code: Some(f.reason_code.as_str().to_owned()),
            message: f.message.as_str().to_owned(),
        });
    }
    Report {
        ok: !checks.is_empty() && checks.iter().all(|c| c.ok),
        provider: provider.to_owned(),
        checks,
        missing_permissions: missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;
    use crate::sanitize::SafeText;

    fn unit(key: String, outcome: UnitOutcome, failure: Option<(ReasonCode, &str)>) -> UnitRecord {
        UnitRecord {
            unit_key: key,
            outcome: Some(outcome),
            reason_code: failure.map(|f| f.0),
            message: failure.map(|f| SafeText::sanitize(f.1)),
            child_run_id: None,
            updated_at: Timestamp::EPOCH,
        }
    }

    #[test]
    fn the_answer_is_read_back_from_the_units_in_check_order() {
        // the ledger answers in any order; the checks come back in the
        // order they were made (group before assignment_filter, although
        // not alphabetically; the 11th read after the 2nd)
        let units = vec![
            unit(
                permission_key(1, "Group.Read.All"),
                UnitOutcome::Failed,
                Some((ReasonCode::ProviderPermissionMissing, "lacks Group.Read.All")),
            ),
            unit(permission_key(0, "Z.Read.All"), UnitOutcome::Succeeded, None),
            unit(read_key(10, "app_protection_policy"), UnitOutcome::Succeeded, None),
            unit(read_key(1, "assignment_filter"), UnitOutcome::Succeeded, None),
            unit(read_key(0, "group"), UnitOutcome::Succeeded, None),
            unit(SIGN_IN.to_owned(), UnitOutcome::Succeeded, None),
        ];
        let r = report("graph", &units, None);
        assert!(!r.ok);
        let names: Vec<&str> = r.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "sign-in",
                "read group",
                "read assignment_filter",
                "read app_protection_policy",
                "permission Z.Read.All",
                "permission Group.Read.All"
            ]
        );
        assert_eq!(r.missing_permissions, ["Group.Read.All"]);
        assert_eq!(r.checks[5].reason_code.as_deref(), Some("provider.permission_missing"));
        assert_eq!(r.checks[0].message, "ok");
        let all_ok = report("directory", &units[1..], None);
        assert_eq!(all_ok.checks.len(), 5);
        assert!(all_ok.ok && all_ok.missing_permissions.is_empty());
    }

    #[test]
    fn a_check_that_could_not_connect_says_why() {
        let f = Failure::new(
            ReasonCode::RunBlockedPrecondition,
            "the tenant has no provider connection configured",
        );
        let r = report("none", &[], Some(&f));
        assert!(!r.ok);
        assert_eq!(r.checks.len(), 1);
        assert_eq!(r.checks[0].reason_code.as_deref(), Some("run.blocked_precondition"));
        assert!(report("none", &[], None).checks.is_empty());
        assert!(!report("none", &[], None).ok);
    }
}
