//! Time as the engine sees it: microseconds since the Unix epoch, UTC.
//!
//! Microseconds are what both PostgreSQL (`timestamptz`) and our SQLite
//! encoding (an integer) hold exactly, so a timestamp survives a round trip
//! through either backend unchanged. "Now" is never read here: callers pass
//! it in (the engine's clock), which is what lets lease, stale and retention
//! rules be tested by moving a clock instead of sleeping.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::FieldError;

/// A UTC instant with microsecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// Builds a timestamp from microseconds since the Unix epoch.
    pub const fn from_unix_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn unix_micros(self) -> i64 {
        self.0
    }

    /// Converts from `time`, truncating below a microsecond.
    pub fn from_datetime(dt: OffsetDateTime) -> Self {
        let nanos = dt.unix_timestamp_nanos();
        Self(i64::try_from(nanos.div_euclid(1_000)).unwrap_or(i64::MAX))
    }

    /// Converts to `time` (UTC).
    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Parses an RFC 3339 timestamp (any offset), e.g. `2026-11-23T10:00:00Z`.
    pub fn parse_rfc3339(field: &str, s: &str) -> Result<Self, FieldError> {
        OffsetDateTime::parse(s.trim(), &Rfc3339)
            .map(Self::from_datetime)
            .map_err(|_| FieldError::new(field, "must be an RFC 3339 timestamp such as 2026-11-23T10:00:00Z"))
    }

    /// Formats as RFC 3339 in UTC.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .format(&Rfc3339)
            .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
    }

    /// `self + d`, saturating at the end of representable time.
    pub fn plus(self, d: Duration) -> Self {
        let micros = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(micros))
    }

    /// `self - d`, saturating.
    pub fn minus(self, d: Duration) -> Self {
        let micros = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(micros))
    }

    /// Time from `earlier` to `self`; zero when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        let micros = self.0.saturating_sub(earlier.0);
        Duration::from_micros(u64::try_from(micros).unwrap_or(0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339("timestamp", &s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_keeps_microseconds() {
        let t = Timestamp::parse_rfc3339("t", "2026-11-23T10:11:12.123456Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-23T10:11:12.123456Z");
        let back = Timestamp::parse_rfc3339("t", &t.to_rfc3339()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let t = Timestamp::parse_rfc3339("t", "2026-11-23T12:00:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-23T10:00:00Z");
    }

    #[test]
    fn bad_input_names_the_field() {
        let err = Timestamp::parse_rfc3339("since", "yesterday").unwrap_err();
        assert_eq!(err.field, "since");
        assert!(err.rule.contains("RFC 3339"));
    }

    #[test]
    fn arithmetic_saturates_and_since_is_never_negative() {
        let t = Timestamp::from_unix_micros(1_000_000);
        assert_eq!(t.plus(Duration::from_secs(1)).unix_micros(), 2_000_000);
        assert_eq!(t.minus(Duration::from_secs(2)).unix_micros(), -1_000_000);
        assert_eq!(Timestamp::EPOCH.since(t), Duration::ZERO);
        assert_eq!(t.since(Timestamp::EPOCH), Duration::from_secs(1));
        assert_eq!(
            Timestamp::from_unix_micros(i64::MAX).plus(Duration::from_secs(5)),
            Timestamp::from_unix_micros(i64::MAX)
        );
    }

    #[test]
    fn datetime_conversion_truncates_to_micros() {
        let dt = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        let t = Timestamp::from_datetime(dt);
        assert_eq!(t.unix_micros(), 1_700_000_000_123_456);
        assert_eq!(t.to_datetime().unix_timestamp_nanos(), 1_700_000_000_123_456_000);
    }
}
