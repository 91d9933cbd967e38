//! A tenant as a folder of JSON files laid out like Graph URLs — what the
//! directory provider serves, the local Graph loads, and the demo tenants
//! are made of.
//!
//! ```text
//! TENANT/tenant.json                                  {"id", "displayName", "domain", "grantedPermissions": [...]}
//! TENANT/beta/deviceManagement/deviceConfigurations.json   {"value": [ENTITY…]}
//! TENANT/beta/deviceManagement/configurationPolicies.json  (one file per object type's collection;
//! …                                                         a missing file is an empty collection)
//! TENANT/beta/groups.json
//! TENANT/faults.json                                  optional: {"faults": [RULE…]}
//! ```
//!
//! Entities are exactly as Graph returns them, with their navigation
//! properties inline under Graph's names: `assignments` on every type that
//! has them, `settings` (settings catalog), `scheduledActionsForRule` with
//! `scheduledActionConfigurations` (compliance), `definitionValues` with
//! `definition` and `presentationValues` / `presentation` (administrative
//! templates), `scriptContent` (scripts), `apps` (app protection).
//!
//! Writes never touch the folder: they go to an overlay folder beside it
//! (`TENANT.overlay/`, same layout), whose collection files replace the
//! folder's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ProviderError, Result};
use crate::object::{DESCRIPTORS, ObjectType};

/// The properties a list leaves out and a full read adds.
pub const NAVIGATION_PROPERTIES: &[&str] = &[
    "assignments",
    "settings",
    "scheduledActionsForRule",
    "definitionValues",
    "scriptContent",
    "apps",
];

/// `tenant.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantInfo {
    /// The Entra tenant id (a GUID).
    pub id: String,
    /// The organization's name.
    pub display_name: String,
    /// Its primary domain.
    pub domain: String,
    /// The application permissions the connection has.
    pub granted_permissions: Vec<String>,
}

/// What a fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 429 with `Retry-After: retry_after` (integer or decimal seconds).
    Throttle,
    /// 503.
    Unavailable,
    /// 403 naming `permission`.
    Forbidden,
    /// The object at `path` is listed but a read of it answers 404 (it was
    /// deleted between the list and the get).
    Vanish,
    /// The list page number `page` (1-based) of `path` cannot be read
    /// (500 each time).
    BrokenPage,
    /// The bearer token is refused with 401 as expired (the local Graph
    /// only).
    ExpireToken,
}

/// One scripted fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// The request path relative to the API version
    /// (`deviceManagement/configurationPolicies`, or an item's path); a
    /// rule matches that path and every path below it.
    pub path: String,
    /// `GET`, `POST`, `PATCH`, `PUT`, `DELETE`; any when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// What happens.
    pub fault: FaultKind,
    /// For `throttle`: seconds, integer or decimal (`"2"`, `"0.5"`).
    #[serde(default)]
    pub retry_after: Option<String>,
    /// How many times it fires (always when absent).
    #[serde(default)]
    pub times: Option<u32>,
    /// For `broken_page`: which page (1-based).
    #[serde(default)]
    pub page: Option<u32>,
    /// For `forbidden`: the permission named.
    #[serde(default)]
    pub permission: Option<String>,
}

impl FaultRule {
    /// The `Retry-After` value as a duration.
    pub fn retry_after_duration(&self) -> Option<Duration> {
        self.retry_after
            .as_deref()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        let p = self.path.trim_matches('/');
        let path = path.trim_matches('/');
        let under = path == p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/'));
        under && self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

/// `faults.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultFile {
    /// The rules, first match wins.
    pub faults: Vec<FaultRule>,
}

/// Fault rules with the count each has fired, shared by every request.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<(FaultRule, AtomicU32)>,
}

impl Faults {
    /// Rules to apply.
    pub fn new(rules: Vec<FaultRule>) -> Self {
        Self {
            rules: rules.into_iter().map(|r| (r, AtomicU32::new(0))).collect(),
        }
    }

    /// The fault a request meets, if any: the first matching rule that has
    /// fires left (counted here). `page` is the 1-based list page a request
    /// reads, for `broken_page`; `vanish` rules are not returned here (see
    /// [`Faults::vanished`]).
    pub fn hit(&self, method: &str, path: &str, page: Option<u32>) -> Option<FaultRule> {
        for (rule, fired) in &self.rules {
            if rule.fault == FaultKind::Vanish || !rule.matches(method, path) {
                continue;
            }
            if rule.fault == FaultKind::BrokenPage && rule.page.unwrap_or(1) != page.unwrap_or(1) {
                continue;
            }
            if rule.fault == FaultKind::BrokenPage && page.is_none() {
                continue;
            }
            let limit = rule.times.unwrap_or(u32::MAX);
            let taken = fired.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < limit).then_some(n + 1));
            if taken.is_ok() {
                return Some(rule.clone());
            }
        }
        None
    }

    /// Whether the object at `item_path` (`coll/id`) is listed but gone.
    pub fn vanished(&self, item_path: &str) -> bool {
        self.rules
            .iter()
            .any(|(r, _)| r.fault == FaultKind::Vanish && r.path.trim_matches('/') == item_path.trim_matches('/'))
    }

    /// The rules.
    pub fn rules(&self) -> impl Iterator<Item = &FaultRule> {
        self.rules.iter().map(|(r, _)| r)
    }
}

/// A tenant folder, read into memory and checked.
#[derive(Clone, Debug)]
pub struct TenantData {
    /// `tenant.json`.
    pub info: TenantInfo,
    /// Every object type's entities (with navigation data inline).
    pub collections: BTreeMap<ObjectType, Vec<Value>>,
    /// `faults.json`.
    pub faults: Vec<FaultRule>,
}

/// The file of a collection under a tenant folder.
pub fn collection_file(root: &Path, ty: ObjectType) -> PathBuf {
    root.join("beta").join(format!("{}.json", ty.descriptor().collection))
}

/// The overlay folder of a tenant folder (`TENANT.overlay` beside it).
pub fn overlay_dir(root: &Path) -> PathBuf {
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tenant".to_owned());
    root.with_file_name(format!("{name}.overlay"))
}

fn malformed(file: &Path, what: impl std::fmt::Display) -> ProviderError {
    ProviderError::Malformed(format!("{}: {what}", file.display()))
}

fn read_json(file: &Path) -> Result<Option<Value>> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| malformed(file, format!("not valid JSON ({e})"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ProviderError::Unavailable(format!("{}: {e}", file.display()))),
    }
}

/// Checks one collection document (`{"value": [...]}`) for a type and
/// returns its entities: every entity an object with a string `id` and an
/// `@odata.type` this build knows for the type, ids unique.
pub fn check_collection(file: &Path, ty: ObjectType, doc: Value) -> Result<Vec<Value>> {
    let Value::Object(mut m) = doc else {
        return Err(malformed(file, "must be an object {\"value\": [...]}"));
    };
    let Some(Value::Array(items)) = m.remove("value") else {
        return Err(malformed(file, "must hold a \"value\" array"));
    };
    let d = ty.descriptor();
    let mut ids = std::collections::HashSet::new();
    for (i, e) in items.iter().enumerate() {
        let Some(obj) = e.as_object() else {
            return Err(malformed(file, format!("value[{i}] must be an object")));
        };
        let Some(id) = obj.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
            return Err(malformed(file, format!("value[{i}] has no string \"id\"")));
        };
        if !ids.insert(id.to_owned()) {
            return Err(malformed(file, format!("value[{i}]: id {id} appears twice")));
        }
        match obj.get("@odata.type").and_then(Value::as_str) {
            Some(t) if d.knows(t) => {}
            Some(t) => {
                return Err(malformed(
                    file,
                    format!("value[{i}] (id {id}): unknown @odata.type {t} for {}", d.name),
                ));
            }
            None => return Err(malformed(file, format!("value[{i}] (id {id}) has no \"@odata.type\""))),
        }
        if obj.get(d.name_property).and_then(Value::as_str).is_none() {
            return Err(malformed(
                file,
                format!("value[{i}] (id {id}) has no string \"{}\"", d.name_property),
            ));
        }
    }
    Ok(items)
}

impl TenantData {
    /// Reads and checks the folder at `root`, with its overlay's collection
    /// files in place of the folder's. A malformed file is
    /// [`ProviderError::Malformed`] naming the file and what is wrong.
    pub fn load(root: &Path) -> Result<TenantData> {
        let info_file = root.join("tenant.json");
        let info = match read_json(&info_file)? {
            Some(v) => serde_json::from_value::<TenantInfo>(v).map_err(|e| malformed(&info_file, e))?,
            None => {
                return Err(if root.is_dir() {
                    malformed(&info_file, "missing (a tenant folder holds tenant.json)")
                } else {
                    ProviderError::Unavailable(format!("{}: no such folder", root.display()))
                });
            }
        };
        let overlay = overlay_dir(root);
        let mut collections = BTreeMap::new();
        for d in &DESCRIPTORS {
            let over = collection_file(&overlay, d.ty);
            let base = collection_file(root, d.ty);
            let (file, doc) = match read_json(&over)? {
                Some(doc) => (over, Some(doc)),
                None => {
                    let doc = read_json(&base)?;
                    (base, doc)
                }
            };
            let items = match doc {
                Some(doc) => check_collection(&file, d.ty, doc)?,
                None => Vec::new(),
            };
            collections.insert(d.ty, items);
        }
        let faults_file = root.join("faults.json");
        let faults = match read_json(&faults_file)? {
            Some(v) => {
                serde_json::from_value::<FaultFile>(v)
                    .map_err(|e| malformed(&faults_file, e))?
                    .faults
            }
            None => Vec::new(),
        };
        Ok(TenantData {
            info,
            collections,
            faults,
        })
    }

    /// The entities of a type.
    pub fn items(&self, ty: ObjectType) -> &[Value] {
        self.collections.get(&ty).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// An entity as a list shows it: without its navigation properties.
pub fn list_entry(v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        for k in NAVIGATION_PROPERTIES {
            m.remove(*k);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_fire_as_many_times_as_scripted_and_match_below_their_path() {
        let f = Faults::new(vec![
            FaultRule {
                path: "deviceManagement/configurationPolicies".into(),
                method: Some("GET".into()),
                fault: FaultKind::Throttle,
                retry_after: Some("0.5".into()),
                times: Some(2),
                page: None,
                permission: None,
            },
            FaultRule {
                path: "deviceManagement/deviceConfigurations".into(),
                method: None,
                fault: FaultKind::BrokenPage,
                retry_after: None,
                times: None,
                page: Some(2),
                permission: None,
            },
        ]);
        let p = "deviceManagement/configurationPolicies/abc/settings";
        assert_eq!(
            f.hit("GET", p, None).unwrap().retry_after_duration(),
            Some(Duration::from_millis(500))
        );
        assert!(f.hit("POST", p, None).is_none());
        assert!(f.hit("GET", p, None).is_some());
        assert!(f.hit("GET", p, None).is_none(), "fired twice only");
        assert!(f.hit("GET", "deviceManagement/configurationPoliciesX", None).is_none());
        let dc = "deviceManagement/deviceConfigurations";
        assert!(f.hit("GET", dc, Some(1)).is_none());
        assert!(f.hit("GET", dc, Some(2)).is_some());
        assert!(f.hit("GET", dc, Some(2)).is_some(), "a broken page stays broken");
    }

    #[test]
    fn a_collection_with_an_unknown_odata_type_is_refused_by_name() {
        let doc =
            serde_json::json!({"value": [{"id": "1", "@odata.type": "#microsoft.graph.madeUp", "displayName": "x"}]});
        let e = check_collection(Path::new("f.json"), ObjectType::DeviceConfiguration, doc).unwrap_err();
        assert!(
            e.to_string().contains("unknown @odata.type #microsoft.graph.madeUp"),
            "{e}"
        );
        let e = check_collection(Path::new("f.json"), ObjectType::Group, serde_json::json!([])).unwrap_err();
        assert!(e.to_string().contains("\"value\""), "{e}");
    }
}
