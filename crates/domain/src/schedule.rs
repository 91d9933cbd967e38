//! Cron schedules: when a schedule fires next.
//!
//! Patterns are standard five-field cron (`minute hour day month weekday`),
//! evaluated in UTC. A schedule that missed fire times (every node was down)
//! fires once when it is next seen due and then moves to its next fire time
//! after "now" — never once per missed tick.

use std::fmt;

use chrono::{DateTime, Utc};
use croner::Cron;

use crate::catalog::OperationType;
use crate::ids::{RunId, TenantId, WorkspaceId};
use crate::params::Params;
use crate::{FieldError, Timestamp};

/// A parsed cron pattern.
#[derive(Clone)]
pub struct CronSpec {
    text: String,
    cron: Cron,
}

impl CronSpec {
    /// Parses a five-field cron pattern, naming `field` on failure.
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        let text = s.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.split(' ').count() != 5 {
            return Err(FieldError::new(
                field,
                "must be a five-field cron pattern: minute hour day month weekday",
            ));
        }
        let cron: Cron = text
            .parse()
            .map_err(|e| FieldError::new(field, format!("is not a valid cron pattern ({e})")))?;
        // a pattern that can never fire is refused now, not at 3 a.m.
        let reference = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default(); // 2026-01-01
        if cron.find_next_occurrence(&reference, false).is_err() {
            return Err(FieldError::new(field, "never matches a time"));
        }
        Ok(Self { text, cron })
    }

    /// The pattern as written (whitespace normalised).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let dt: DateTime<Utc> = DateTime::from_timestamp_micros(t.unix_micros())?;
        let next = self.cron.find_next_occurrence(&dt, false).ok()?;
        Some(Timestamp::from_unix_micros(next.timestamp_micros()))
    }
}

impl fmt::Debug for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronSpec({:?})", self.text)
    }
}

impl PartialEq for CronSpec {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// A cron schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// Id.
    pub id: uuid::Uuid,
    /// Unique name.
    pub name: String,
    /// Five-field cron pattern (UTC).
    pub cron: String,
    /// Workspace of the tenant (`None` for system operations).
    pub workspace_id: Option<WorkspaceId>,
    /// Tenant (`None` for system operations).
    pub tenant_id: Option<TenantId>,
    /// The operation it starts.
    pub op_type: OperationType,
    /// Its parameters.
    pub params: Params,
    /// Whether it fires.
    pub enabled: bool,
    /// Next fire time.
    pub next_fire_at: Timestamp,
    /// Last fire time.
    pub last_fired_at: Option<Timestamp>,
    /// The run the last fire started or joined.
    pub last_run_id: Option<RunId>,
}

/// A schedule to create or replace (by name).
#[derive(Clone, Debug, PartialEq)]
pub struct NewSchedule {
    /// Unique name.
    pub name: String,
    /// Five-field cron pattern (UTC), already validated.
    pub cron: String,
    /// Workspace and tenant, or `None` for a system operation.
    pub target: Option<(WorkspaceId, TenantId)>,
    /// The operation.
    pub op_type: OperationType,
    /// Validated parameters.
    pub params: Params,
    /// First fire time.
    pub next_fire_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339("t", s).unwrap()
    }

    #[test]
    fn next_fire_times() {
        let daily = CronSpec::parse("cron", "0 3 * * *").unwrap();
        assert_eq!(
            daily.next_after(ts("2026-11-23T01:00:00Z")),
            Some(ts("2026-11-23T03:00:00Z"))
        );
        assert_eq!(
            daily.next_after(ts("2026-11-23T03:00:00Z")),
            Some(ts("2026-11-24T03:00:00Z")),
            "strictly after"
        );
        let every5 = CronSpec::parse("cron", " */5  *  * * * ").unwrap();
        assert_eq!(every5.as_str(), "*/5 * * * *");
        assert_eq!(
            every5.next_after(ts("2026-11-23T01:02:03.5Z")),
            Some(ts("2026-11-23T01:05:00Z"))
        );
    }

    #[test]
    fn bad_patterns_name_the_field() {
        for bad in ["", "* * *", "61 * * * *", "* * * * * * *", "0 3 31 2 *"] {
            let e = CronSpec::parse("--cron", bad).unwrap_err();
            assert_eq!(e.field, "--cron", "{bad:?}");
        }
    }
}
