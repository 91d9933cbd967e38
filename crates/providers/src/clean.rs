//! Read-only properties: what Graph refuses in a POST, PATCH or PUT body.
//!
//! [`read_only_paths`] finds them (the local Graph answers 400 when it
//! finds any, as Graph does); [`for_write`] strips them, keeping the
//! top-level `@odata.type`. Both know the same list, so a handler that
//! writes through [`for_write`] never sends what the mock would refuse.

use serde_json::{Map, Value};

use crate::object::ObjectType;

/// Properties Graph sets itself, refused in a write body at any depth.
pub const READ_ONLY: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "modifiedDateTime",
    "version",
    "supportsScopeTags",
    "isAssigned",
    "settingCount",
    "creationSource",
    "@odata.context",
    "@odata.id",
    "@odata.etag",
];

/// Per-type read-only properties (top level).
pub fn read_only_for(ty: ObjectType) -> &'static [&'static str] {
    match ty {
        ObjectType::MobileApp => &[
            "uploadState",
            "publishingState",
            "dependentAppCount",
            "supersedingAppCount",
            "supersededAppCount",
            "size",
            "committedContentVersion",
        ],
        ObjectType::AppProtectionPolicy => &["deployedAppCount", "isAssigned"],
        ObjectType::PowershellScript => &["fileName@odata.type"],
        _ => &[],
    }
}

/// Whether a key is read-only wherever it appears: the common list, or any
/// OData annotation (`…@odata.navigationLink`, `<property>@odata.type`,
/// `@odata.count`, …) except an object's own `@odata.type` and the
/// `…@odata.bind` references a write uses.
fn is_read_only_key(key: &str) -> bool {
    if READ_ONLY.contains(&key) {
        return true;
    }
    match key.split_once("@odata.") {
        Some((_, annotation)) => key != "@odata.type" && annotation != "bind",
        None => false,
    }
}

/// The JSON paths (`a.b[2].c`) of read-only properties in a write body.
pub fn read_only_paths(ty: ObjectType, body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Value::Object(m) = body {
        for k in read_only_for(ty) {
            if m.contains_key(*k) {
                out.push((*k).to_owned());
            }
        }
    }
    walk(body, "", &mut out);
    out.sort();
    out.dedup();
    out
}

fn walk(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if is_read_only_key(k) {
                    out.push(p);
                } else {
                    walk(child, &p, out);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk(child, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The body of a write: `v` without read-only properties at any depth
/// (keeping `@odata.type` on objects and `…@odata.bind` references).
pub fn for_write(ty: ObjectType, v: &Value) -> Value {
    let mut out = strip(v);
    if let Value::Object(m) = &mut out {
        for k in read_only_for(ty) {
            m.remove(*k);
        }
    }
    out
}

fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, child) in m {
                if !is_read_only_key(k) {
                    out.insert(k.clone(), strip(child));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_and_strips_what_graph_refuses() {
        let body = json!({
            "@odata.context": "https://graph.microsoft.com/beta/$metadata#x",
            "@odata.type": "#microsoft.graph.windows10GeneralConfiguration",
            "id": "1",
            "displayName": "Baseline",
            "version": 3,
            "assignments@odata.navigationLink": "x",
            "nested": {"createdDateTime": "2026-01-01T00:00:00Z", "@odata.type": "#microsoft.graph.x", "keep": 1},
            "list": [{"lastModifiedDateTime": "x", "a": 1}],
            "definition@odata.bind": "https://graph.microsoft.com/beta/x",
            "roleScopeTagIds@odata.type": "#Collection(String)"
        });
        let paths = read_only_paths(ObjectType::DeviceConfiguration, &body);
        assert_eq!(
            paths,
            vec![
                "@odata.context",
                "assignments@odata.navigationLink",
                "id",
                "list[0].lastModifiedDateTime",
                "nested.createdDateTime",
                "roleScopeTagIds@odata.type",
                "version"
            ]
        );
        let clean = for_write(ObjectType::DeviceConfiguration, &body);
        assert!(read_only_paths(ObjectType::DeviceConfiguration, &clean).is_empty());
        assert_eq!(clean["@odata.type"], body["@odata.type"]);
        assert_eq!(clean["nested"]["@odata.type"], "#microsoft.graph.x");
        assert_eq!(clean["definition@odata.bind"], body["definition@odata.bind"]);
        assert_eq!(clean["displayName"], "Baseline");
    }
}
