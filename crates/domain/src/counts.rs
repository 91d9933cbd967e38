//! Law 3 — summary counts are a closed, numeric vocabulary.
//!
//! Keys come from [`SummaryKey`] and nothing else; values are non-negative
//! integers; the map is flat. [`SummaryCounts::parse_reported`] is the one
//! gate for counts coming from outside (a handler, an integrator): it rejects
//! unknown keys, non-integers and negatives with an error naming the key, and
//! it refuses the keys the unit ledger owns (`total`, `processed`, and the
//! per-unit outcome tallies) so outcome counters are never passed off as
//! progress (law 4).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// A summary-count key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryKey {
    /// Planned work units (owned by the unit ledger).
    Total,
    /// Work units that reached a terminal state (owned by the unit ledger).
    Processed,
    /// Units or items that succeeded.
    Succeeded,
    /// Units or items that failed.
    Failed,
    /// Units (child runs) that partially succeeded.
    Partial,
    /// Units or items that were skipped.
    Skipped,
    /// Objects created.
    Created,
    /// Objects updated.
    Updated,
    /// Objects deleted.
    Deleted,
    /// Objects found unchanged.
    Unchanged,
    /// Findings produced (drift, compare).
    Findings,
    /// Items handled (exported, captured, ...).
    Items,
    /// Bytes written.
    Bytes,
    /// Provider requests throttled and retried.
    Throttled,
}

impl SummaryKey {
    /// Every key.
    pub const ALL: [SummaryKey; 14] = [
        SummaryKey::Total,
        SummaryKey::Processed,
        SummaryKey::Succeeded,
        SummaryKey::Failed,
        SummaryKey::Partial,
        SummaryKey::Skipped,
        SummaryKey::Created,
        SummaryKey::Updated,
        SummaryKey::Deleted,
        SummaryKey::Unchanged,
        SummaryKey::Findings,
        SummaryKey::Items,
        SummaryKey::Bytes,
        SummaryKey::Throttled,
    ];

    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            SummaryKey::Total => "total",
            SummaryKey::Processed => "processed",
            SummaryKey::Succeeded => "succeeded",
            SummaryKey::Failed => "failed",
            SummaryKey::Partial => "partial",
            SummaryKey::Skipped => "skipped",
            SummaryKey::Created => "created",
            SummaryKey::Updated => "updated",
            SummaryKey::Deleted => "deleted",
            SummaryKey::Unchanged => "unchanged",
            SummaryKey::Findings => "findings",
            SummaryKey::Items => "items",
            SummaryKey::Bytes => "bytes",
            SummaryKey::Throttled => "throttled",
        }
    }

    /// Parses a key name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Keys whose values come from the unit ledger, never from a report.
    pub const fn owned_by_unit_ledger(self) -> bool {
        matches!(
            self,
            SummaryKey::Total
                | SummaryKey::Processed
                | SummaryKey::Succeeded
                | SummaryKey::Failed
                | SummaryKey::Partial
                | SummaryKey::Skipped
        )
    }
}

/// A flat map of summary counts with keys from the closed vocabulary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SummaryCounts(BTreeMap<SummaryKey, u64>);

impl SummaryCounts {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses counts reported from outside the unit ledger.
    ///
    /// `field` names the whole map in errors (e.g. `summary_counts`); each
    /// error names the offending key as `field.key`.
    pub fn parse_reported(field: &str, value: &serde_json::Value) -> Result<Self, FieldError> {
        let obj = value
            .as_object()
            .ok_or_else(|| FieldError::new(field, "must be a flat JSON object of counts"))?;
        let mut out = BTreeMap::new();
        for (k, v) in obj {
            let key_field = format!("{field}.{k}");
            let key = SummaryKey::parse(k).ok_or_else(|| {
                FieldError::new(
                    &key_field,
                    format!(
                        "unknown summary-count key; allowed: {}",
                        SummaryKey::ALL
                            .iter()
                            .filter(|k| !k.owned_by_unit_ledger())
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            if key.owned_by_unit_ledger() {
                return Err(FieldError::new(
                    &key_field,
                    "is derived from the run's work units and cannot be reported",
                ));
            }
            let n = match v {
                serde_json::Value::Number(n) => n
                    .as_u64()
                    .ok_or_else(|| FieldError::new(&key_field, "must be a non-negative integer"))?,
                _ => {
                    return Err(FieldError::new(
                        &key_field,
                        "must be a non-negative integer (not a string, object or list)",
                    ));
                }
            };
            out.insert(key, n);
        }
        Ok(Self(out))
    }

    /// Rebuilds counts from storage, keeping only known keys with integer
    /// values (storage only ever holds what [`Self::parse_reported`] let in).
    pub fn from_stored(value: &serde_json::Value) -> Self {
        let mut out = BTreeMap::new();
        if let Some(obj) = value.as_object() {
            for (k, v) in obj {
                if let (Some(key), Some(n)) = (SummaryKey::parse(k), v.as_u64()) {
                    out.insert(key, n);
                }
            }
        }
        Self(out)
    }

    /// The value for `key`, if set.
    pub fn get(&self, key: SummaryKey) -> Option<u64> {
        self.0.get(&key).copied()
    }

    /// Sets `key`.
    pub fn set(&mut self, key: SummaryKey, value: u64) {
        self.0.insert(key, value);
    }

    /// Adds `other` into `self`, key by key (saturating).
    pub fn add(&mut self, other: &SummaryCounts) {
        for (k, v) in &other.0 {
            let e = self.0.entry(*k).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The counts as a JSON object with string keys.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), serde_json::Value::from(*v)))
                .collect(),
        )
    }

    /// Iterates over the set keys in order.
    pub fn iter(&self) -> impl Iterator<Item = (SummaryKey, u64)> + '_ {
        self.0.iter().map(|(k, v)| (*k, *v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn accepts_known_non_ledger_keys() {
        let c = SummaryCounts::parse_reported("summary_counts", &json!({"created": 3, "findings": 0})).unwrap();
        assert_eq!(c.get(SummaryKey::Created), Some(3));
        assert_eq!(c.get(SummaryKey::Findings), Some(0));
        assert_eq!(c.to_json(), json!({"created": 3, "findings": 0}));
    }

    #[test]
    fn rejects_unknown_keys_naming_them() {
        let e = SummaryCounts::parse_reported("summary_counts", &json!({"widgets": 1})).unwrap_err();
        assert_eq!(e.field, "summary_counts.widgets");
        assert!(e.rule.contains("unknown"));
    }

    #[test]
    fn rejects_negatives_fractions_strings_and_nesting() {
        for (bad, key) in [
            (json!({"created": -1}), "created"),
            (json!({"created": 1.5}), "created"),
            (json!({"updated": "3"}), "updated"),
            (json!({"items": {"a": 1}}), "items"),
            (json!({"items": [1]}), "items"),
        ] {
            let e = SummaryCounts::parse_reported("c", &bad).unwrap_err();
            assert_eq!(e.field, format!("c.{key}"), "{bad}");
            assert!(e.rule.contains("non-negative integer"), "{}", e.rule);
        }
        assert_eq!(SummaryCounts::parse_reported("c", &json!([1])).unwrap_err().field, "c");
    }

    #[test]
    fn ledger_keys_cannot_be_reported() {
        for k in ["total", "processed", "succeeded", "failed", "partial", "skipped"] {
            let e = SummaryCounts::parse_reported("c", &json!({ k: 1 })).unwrap_err();
            assert_eq!(e.field, format!("c.{k}"));
            assert!(e.rule.contains("work units"));
        }
    }

    #[test]
    fn add_merges_and_saturates() {
        let mut a = SummaryCounts::new();
        a.set(SummaryKey::Created, u64::MAX - 1);
        let mut b = SummaryCounts::new();
        b.set(SummaryKey::Created, 5);
        b.set(SummaryKey::Updated, 2);
        a.add(&b);
        assert_eq!(a.get(SummaryKey::Created), Some(u64::MAX));
        assert_eq!(a.get(SummaryKey::Updated), Some(2));
    }

    proptest! {
        #[test]
        fn any_accepted_map_round_trips(values in proptest::collection::btree_map(
            proptest::sample::select(SummaryKey::ALL.iter().copied().filter(|k| !k.owned_by_unit_ledger()).collect::<Vec<_>>()),
            any::<u64>(), 0..8))
        {
            let obj: serde_json::Map<String, serde_json::Value> =
                values.iter().map(|(k, v)| (k.as_str().to_owned(), json!(v))).collect();
            let parsed = SummaryCounts::parse_reported("c", &serde_json::Value::Object(obj.clone())).unwrap();
            prop_assert_eq!(parsed.to_json(), serde_json::Value::Object(obj));
            prop_assert_eq!(SummaryCounts::from_stored(&parsed.to_json()), parsed);
        }

        #[test]
        fn arbitrary_keys_are_rejected_unless_known(k in "[a-z_]{1,12}", v in any::<u32>()) {
            let r = SummaryCounts::parse_reported("c", &json!({ k.clone(): v }));
            match SummaryKey::parse(&k) {
                Some(key) if !key.owned_by_unit_ledger() => prop_assert!(r.is_ok()),
                _ => prop_assert_eq!(r.unwrap_err().field, format!("c.{k}")),
            }
        }
    }
}
