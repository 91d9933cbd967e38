//! Normalization and versions: the one form in which TenantAtlas stores and
//! compares a tenant's objects.
//!
//! [`normalize`] turns an object as a provider read it into that form;
//! [`canonical_json`] is its text and [`version_hash`] (SHA-256 of the text)
//! names a version; [`diff`] lists the per-setting differences between two
//! normalized versions.
//!
//! What normalizing does, and why:
//!
//! - **Read-only and volatile properties go, at any depth**: the common list
//!   [`READ_ONLY`] (`id`, `createdDateTime`, `lastModifiedDateTime`,
//!   `modifiedDateTime`, `version`, `supportsScopeTags`, `isAssigned`,
//!   `settingCount`, `creationSource`, `@odata.context`, `@odata.id`,
//!   `@odata.etag`) and every other OData annotation (`…@odata.navigationLink`,
//!   `…@odata.associationLink`, `<property>@odata.type`, `@odata.nextLink`, …)
//!   except an object's own `@odata.type` (it selects a polymorphic type, at
//!   the top and inside: a setting instance, a target, a rule) and the
//!   `…@odata.bind` references a write uses. At the top level the type's own
//!   read-only properties go too ([`read_only_for`]: an app's `uploadState`,
//!   `size`, …; app protection's `deployedAppCount`) and what Graph counts or
//!   derives for it (an app's license counts, a filter's `payloads`, a
//!   group's renewal, expiry and sync times and its id-derived security
//!   identifier). An assignment loses its `id` and `sourceId` (both derived
//!   from the policy's and group's ids), a settings catalog setting its
//!   positional `id` ("0", "1", …). Graph changes all of these without anyone
//!   changing the configuration; kept, they would make a new version on every
//!   sync and make the same policy differ between two tenants.
//! - **Absent, `null` and `[]` are one thing**: an object member whose value
//!   is `null` or an empty array is dropped. Graph answers either for "not
//!   set" and adds or omits properties between releases. A writer that needs
//!   the explicit form adds it back (a PATCH that must clear a property the
//!   target has; a settings catalog PUT, which refuses a missing or null
//!   `roleScopeTagIds`). `null` inside an array stays: it holds a position.
//! - **Object keys are sorted** (by code point), whatever order Graph sent.
//! - **Arrays whose order Graph does not promise are sorted by a stable key**:
//!   settings catalog `settings` by `settingInstance.settingDefinitionId` and
//!   every setting's `children` by `settingDefinitionId`; `assignments` by
//!   target (`@odata.type`, `groupId`, filter id, filter type, then
//!   `intent`); administrative template `definitionValues` by definition id
//!   and their `presentationValues` by presentation id; compliance
//!   `scheduledActionsForRule` by `ruleName` and their
//!   `scheduledActionConfigurations` by `actionType` and `gracePeriodHours`;
//!   app protection `apps` by `mobileAppIdentifier`; and the id sets
//!   `roleScopeTagIds` (`roleScopeTags` on filters) and
//!   `notificationMessageCCList`. Ties are broken by the element's canonical
//!   JSON, so the order never depends on the order read. Every other array
//!   keeps its order: a list of values may be ordered (OMA settings, return
//!   codes, detection rules, a setting's value list).
//! - **Numbers**: a float without a fraction is written as an integer
//!   (`1.0` → `1`), so the same number always hashes the same.
//! - **Assignments**: "no filter" is always the all-zero GUID with filter
//!   type `none` (Graph also answers a missing or null filter id).
//! - **Administrative templates**: a definition value names its definition
//!   with `definition@odata.bind` (the reference a write takes, under
//!   [`GRAPH_BIND_BASE`]) and keeps of the inline `definition` only what
//!   tells a person which policy it is (display name, category path, class,
//!   policy type: also what maps a custom ADMX definition to another tenant);
//!   a presentation value likewise gets `presentation@odata.bind` and keeps
//!   the presentation's label. The catalog's own text (explain text,
//!   supported-on, CSP versions, dropdown items) is Microsoft's, not the
//!   policy's: Microsoft editing it must not make a new version of every
//!   policy that uses it. A writer sends the binds and drops the inline
//!   `definition`/`presentation` objects.
//!
//! Normalizing is idempotent: a normalized value normalizes to itself, so a
//! stored version can be normalized again (by a newer build) and compared.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Serialize;
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

use crate::NO_FILTER;
use crate::clean::{READ_ONLY, read_only_for};
use crate::object::ObjectType;

/// The base URL of the `…@odata.bind` references in a normalized
/// administrative template (Graph's global beta endpoint, whatever endpoint
/// the object was read from, so that the same policy hashes the same).
pub const GRAPH_BIND_BASE: &str = "https://graph.microsoft.com/beta/";

const FILTER_ID: &str = "deviceAndAppManagementAssignmentFilterId";
const FILTER_TYPE: &str = "deviceAndAppManagementAssignmentFilterType";

/// What a definition value keeps of its inline `definition`.
const DEFINITION_KEEP: &[&str] = &["@odata.type", "categoryPath", "classType", "displayName", "policyType"];
/// What a presentation value keeps of its inline `presentation`.
const PRESENTATION_KEEP: &[&str] = &["@odata.type", "label"];

/// Characters escaped in an id inside a bind URL: everything but
/// unreserved URL characters, so that an id can never be mistaken for the
/// `('…')` around it.
const BIND_ID: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Top-level properties Graph counts or derives for a type, beyond the
/// read-only ones of [`read_only_for`]: they change without a configuration
/// change.
fn derived_for(ty: ObjectType) -> &'static [&'static str] {
    match ty {
        // License consumption moves as devices install the app.
        ObjectType::MobileApp => &["usedLicenseCount", "totalLicenseCount"],
        // The assignments that use the filter: state of other objects.
        ObjectType::AssignmentFilter => &["payloads"],
        ObjectType::Group => &[
            "deletedDateTime",
            "renewedDateTime",
            "expirationDateTime",
            "onPremisesLastSyncDateTime",
            "onPremisesProvisioningErrors",
            "serviceProvisioningErrors",
            // Derived from the object id, like the id itself.
            "securityIdentifier",
        ],
        _ => &[],
    }
}

/// Whether a key is dropped wherever it appears: the common read-only list,
/// or an OData annotation other than an object's own `@odata.type` and a
/// `…@odata.bind` reference (the same rule as [`crate::clean`]).
fn is_volatile_key(key: &str) -> bool {
    if READ_ONLY.contains(&key) {
        return true;
    }
    match key.split_once("@odata.") {
        Some((_, annotation)) => key != "@odata.type" && annotation != "bind",
        None => false,
    }
}

/// The normalized form of an object of type `ty` for storage and comparison
/// (see the [module documentation](self) for what that means).
pub fn normalize(ty: ObjectType, v: &Value) -> Value {
    let Value::Object(m) = v else {
        return norm(v);
    };
    let read_only = read_only_for(ty);
    let derived = derived_for(ty);
    let mut members = Vec::with_capacity(m.len());
    for (k, child) in m {
        let key = k.as_str();
        if is_volatile_key(key) || read_only.contains(&key) || derived.contains(&key) {
            continue;
        }
        let n = match (ty, key) {
            (_, "assignments") => sorted_array(child, norm_assignment, assignment_sort_key),
            (ObjectType::SettingsCatalogPolicy, "settings") => sorted_array(child, norm, setting_sort_key),
            (ObjectType::CompliancePolicy, "scheduledActionsForRule") => sorted_array(child, norm_rule, rule_sort_key),
            (ObjectType::AdministrativeTemplate, "definitionValues") => {
                sorted_array(child, norm_definition_value, definition_value_sort_key)
            }
            (ObjectType::AppProtectionPolicy, "apps") => sorted_array(child, norm, app_sort_key),
            _ => norm_member(key, child),
        };
        members.push((k.clone(), n));
    }
    object_from(members)
}

/// The version id: lowercase hex SHA-256 of the normalized value's
/// canonical JSON ([`canonical_json`]).
pub fn version_hash(normalized: &Value) -> String {
    let digest = Sha256::digest(canonical_json(normalized).as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Canonical JSON text of a normalized value (what is stored and hashed):
/// object keys sorted by code point at every depth, no whitespace, strings
/// and numbers as `serde_json` writes them. Keys are sorted here too, so
/// the text does not depend on the map order of the value given.
pub fn canonical_json(normalized: &Value) -> String {
    let mut out = String::new();
    write_canonical(normalized, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, child)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_scalar(&Value::String(k.clone()), out);
                out.push(':');
                write_canonical(child, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, child) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(child, out);
            }
            out.push(']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(v: &Value, out: &mut String) {
    // A scalar's Display is its compact JSON (strings quoted and escaped).
    let _ = write!(out, "{v}");
}

// ---------------------------------------------------------------------------
// Normalizing

/// Any value, with the rules that hold at every depth.
fn norm(v: &Value) -> Value {
    match v {
        Value::Object(m) => object_from(
            m.iter()
                .filter(|(k, _)| !is_volatile_key(k))
                .map(|(k, child)| (k.clone(), norm_member(k, child)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(norm).collect()),
        Value::Number(n) => Value::Number(canonical_number(n)),
        other => other.clone(),
    }
}

/// An object member's value: unordered sets by name, anything else as is.
fn norm_member(key: &str, v: &Value) -> Value {
    match key {
        "roleScopeTagIds" | "roleScopeTags" | "notificationMessageCCList" => sorted_array(v, norm, |e| vec![e.clone()]),
        "children" => sorted_array(v, norm, child_setting_sort_key),
        _ => norm(v),
    }
}

/// An object from its members: `null` and `[]` dropped, keys sorted.
fn object_from(mut members: Vec<(String, Value)>) -> Value {
    members.retain(|(_, v)| !is_empty(v));
    members.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Value::Object(members.into_iter().collect())
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// A float without a fraction (within the exactly representable range)
/// becomes an integer.
fn canonical_number(n: &Number) -> Number {
    if n.is_f64()
        && let Some(f) = n.as_f64()
        && f.fract() == 0.0
        && f.abs() < 9_007_199_254_740_992.0
    {
        // Exact: |f| < 2^53 and integral.
        return Number::from(f as i64);
    }
    n.clone()
}

/// An array whose order Graph does not promise: each element normalized
/// with `each`, then sorted by `key` (ties by canonical JSON, so the result
/// never depends on the order read). Anything but an array is normalized
/// as usual.
fn sorted_array(v: &Value, each: impl Fn(&Value) -> Value, key: impl Fn(&Value) -> Vec<Value>) -> Value {
    let Value::Array(items) = v else {
        return norm(v);
    };
    let mut keyed: Vec<(Vec<Value>, String, Value)> = items
        .iter()
        .map(|item| {
            let n = each(item);
            (key(&n), canonical_json(&n), n)
        })
        .collect();
    keyed.sort_by(|a, b| cmp_keys(&a.0, &b.0).then_with(|| a.1.cmp(&b.1)));
    Value::Array(keyed.into_iter().map(|(_, _, n)| n).collect())
}

/// An assignment: without its derived `sourceId` (and `id`, like every
/// object), "no filter" in one form.
fn norm_assignment(v: &Value) -> Value {
    let Value::Object(m) = v else {
        return norm(v);
    };
    let members = m
        .iter()
        .filter(|(k, _)| !is_volatile_key(k) && k.as_str() != "sourceId")
        .map(|(k, child)| {
            let n = if k == "target" {
                norm_target(child)
            } else {
                norm_member(k, child)
            };
            (k.clone(), n)
        })
        .collect();
    object_from(members)
}

fn norm_target(v: &Value) -> Value {
    let Value::Object(mut t) = norm(v) else {
        return norm(v);
    };
    let no_filter = match t.get(FILTER_ID) {
        None => true,
        Some(Value::String(s)) => s.is_empty() || s == NO_FILTER,
        Some(_) => false,
    };
    if no_filter {
        t.insert(FILTER_ID.to_owned(), Value::String(NO_FILTER.to_owned()));
        if !t.contains_key(FILTER_TYPE) {
            t.insert(FILTER_TYPE.to_owned(), Value::String("none".to_owned()));
        }
    }
    object_from(t.into_iter().collect())
}

/// A compliance rule: its action configurations sorted.
fn norm_rule(v: &Value) -> Value {
    let Value::Object(m) = v else {
        return norm(v);
    };
    let members = m
        .iter()
        .filter(|(k, _)| !is_volatile_key(k))
        .map(|(k, child)| {
            let n = if k == "scheduledActionConfigurations" {
                sorted_array(child, norm, action_sort_key)
            } else {
                norm_member(k, child)
            };
            (k.clone(), n)
        })
        .collect();
    object_from(members)
}

/// A definition value: its definition named by a canonical bind, its
/// presentation values likewise and sorted.
fn norm_definition_value(v: &Value) -> Value {
    let Value::Object(m) = v else {
        return norm(v);
    };
    let def_id = own_id(m.get("definition")).or_else(|| bind_id(m.get("definition@odata.bind")));
    let mut members = Vec::with_capacity(m.len() + 1);
    for (k, child) in m {
        match k.as_str() {
            k if is_volatile_key(k) => {}
            "definition" => members.push((k.to_owned(), keep_only(child, DEFINITION_KEEP))),
            // Rebuilt below when the definition is known; kept as read when not.
            "definition@odata.bind" if def_id.is_some() => {}
            "presentationValues" => members.push((
                k.to_owned(),
                sorted_array(
                    child,
                    |pv| norm_presentation_value(pv, def_id.as_deref()),
                    presentation_value_sort_key,
                ),
            )),
            _ => members.push((k.clone(), norm_member(k, child))),
        }
    }
    if let Some(id) = &def_id {
        members.push(("definition@odata.bind".to_owned(), Value::String(definition_bind(id))));
    }
    object_from(members)
}

fn norm_presentation_value(v: &Value, def_id: Option<&str>) -> Value {
    let Value::Object(m) = v else {
        return norm(v);
    };
    let pres_id = own_id(m.get("presentation")).or_else(|| bind_id(m.get("presentation@odata.bind")));
    let bind = match (def_id, &pres_id) {
        (Some(d), Some(p)) => Some(presentation_bind(d, p)),
        _ => None,
    };
    let mut members = Vec::with_capacity(m.len() + 1);
    for (k, child) in m {
        match k.as_str() {
            k if is_volatile_key(k) => {}
            "presentation" => members.push((k.to_owned(), keep_only(child, PRESENTATION_KEEP))),
            "presentation@odata.bind" if bind.is_some() => {}
            _ => members.push((k.clone(), norm_member(k, child))),
        }
    }
    if let Some(b) = bind {
        members.push(("presentation@odata.bind".to_owned(), Value::String(b)));
    }
    object_from(members)
}

/// An inline catalog object reduced to the properties in `keep`.
fn keep_only(v: &Value, keep: &[&str]) -> Value {
    match v {
        Value::Object(m) => object_from(
            m.iter()
                .filter(|(k, _)| keep.contains(&k.as_str()))
                .map(|(k, child)| (k.clone(), norm(child)))
                .collect(),
        ),
        other => norm(other),
    }
}

/// The non-empty string `id` of an inline object.
fn own_id(v: Option<&Value>) -> Option<String> {
    v?.get("id")?.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The last key of a bind URL, decoded.
fn bind_id(v: Option<&Value>) -> Option<String> {
    bind_ids(v?.as_str()?).pop().filter(|s| !s.is_empty())
}

/// The keys inside `('…')` of a bind URL, in order; or its last path
/// segment when it has none (`…/groupPolicyDefinitions/ID`). Decoded, so
/// that a key written by [`definition_bind`] reads back as it was.
fn bind_ids(url: &str) -> Vec<String> {
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let mut out = Vec::new();
    let mut rest = url;
    while let Some(start) = rest.find("('") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("')") else {
            break;
        };
        out.push(decode(&after[..end]));
        rest = &after[end + 2..];
    }
    if out.is_empty()
        && let Some(last) = url.trim_end_matches('/').rsplit('/').next().filter(|s| !s.is_empty())
    {
        out.push(decode(last));
    }
    out
}

fn definition_bind(def_id: &str) -> String {
    format!(
        "{GRAPH_BIND_BASE}deviceManagement/groupPolicyDefinitions('{}')",
        utf8_percent_encode(def_id, BIND_ID)
    )
}

fn presentation_bind(def_id: &str, pres_id: &str) -> String {
    format!(
        "{}/presentations('{}')",
        definition_bind(def_id),
        utf8_percent_encode(pres_id, BIND_ID)
    )
}

// ---------------------------------------------------------------------------
// Sort keys (computed on normalized elements, so normalizing again sorts
// the same way)

fn at(v: &Value, pointer: &str) -> Value {
    v.pointer(pointer).cloned().unwrap_or(Value::Null)
}

fn setting_sort_key(v: &Value) -> Vec<Value> {
    vec![at(v, "/settingInstance/settingDefinitionId")]
}

fn child_setting_sort_key(v: &Value) -> Vec<Value> {
    vec![at(v, "/settingDefinitionId")]
}

fn assignment_sort_key(v: &Value) -> Vec<Value> {
    vec![
        at(v, "/target/@odata.type"),
        at(v, "/target/groupId"),
        at(v, &format!("/target/{FILTER_ID}")),
        at(v, &format!("/target/{FILTER_TYPE}")),
        at(v, "/intent"),
    ]
}

fn definition_value_sort_key(v: &Value) -> Vec<Value> {
    vec![definition_value_id(v).map_or(Value::Null, Value::String)]
}

fn presentation_value_sort_key(v: &Value) -> Vec<Value> {
    vec![presentation_value_id(v).map_or(Value::Null, Value::String)]
}

fn rule_sort_key(v: &Value) -> Vec<Value> {
    vec![at(v, "/ruleName")]
}

fn action_sort_key(v: &Value) -> Vec<Value> {
    vec![at(v, "/actionType"), at(v, "/gracePeriodHours")]
}

fn app_sort_key(v: &Value) -> Vec<Value> {
    vec![at(v, "/mobileAppIdentifier")]
}

fn definition_value_id(v: &Value) -> Option<String> {
    bind_id(v.get("definition@odata.bind")).or_else(|| own_id(v.get("definition")))
}

fn presentation_value_id(v: &Value) -> Option<String> {
    bind_id(v.get("presentation@odata.bind")).or_else(|| own_id(v.get("presentation")))
}

fn cmp_keys(a: &[Value], b: &[Value]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match cmp_values(x, y) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    a.len().cmp(&b.len())
}

/// A total order on JSON values: null < bools < numbers < strings < arrays
/// < objects; numbers by value, strings by code point.
fn cmp_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(i), Some(j), _, _) => i.cmp(&j),
            (_, _, Some(i), Some(j)) => i.cmp(&j),
            _ => {
                let (f, g) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                f.total_cmp(&g)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => cmp_keys(x, y),
        (Value::Object(_), Value::Object(_)) => canonical_json(a).cmp(&canonical_json(b)),
        _ => rank(a).cmp(&rank(b)),
    }
}

// ---------------------------------------------------------------------------
// Diff

/// One difference between two normalized versions, at a setting (a leaf),
/// or a whole element of a keyed list added or removed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// Where: object keys joined by `.`; a keyed list's element by its key
    /// in brackets (a setting by its `settingDefinitionId`, an assignment
    /// by its target, a definition value by its definition's name); any
    /// other list's element by its index (`rules[0].path`).
    pub path: String,
    /// The value before; `None` when it was added.
    pub before: Option<Value>,
    /// The value after; `None` when it was removed.
    pub after: Option<Value>,
}

/// Per-setting differences between two normalized versions, for the hub's
/// diff view: object members compared by key; a list whose elements have a
/// stable key (settings, assignments, definition and presentation values,
/// rules and their actions, protected apps) compared element by element by
/// that key; a list of scalars compared whole (one change shows the list
/// before and after); any other list by index. Equal versions give no
/// change.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    diff_at("", None, Some(before), Some(after), &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn diff_at(path: &str, name: Option<&str>, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<Change>) {
    // A keyed list that is absent on one side (normalized away: it was
    // empty) is compared as empty, so that each element added or removed
    // is its own change ("the group X assignment was removed").
    let empty = Value::Array(Vec::new());
    let (before, after) = match (before, after) {
        (None, Some(Value::Array(_))) if name.is_some_and(|n| keyed_list(n).is_some()) => (Some(&empty), after),
        (Some(Value::Array(_)), None) if name.is_some_and(|n| keyed_list(n).is_some()) => (before, Some(&empty)),
        other => other,
    };
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            for k in keys {
                diff_at(&join(path, k), Some(k), b.get(k.as_str()), a.get(k.as_str()), out);
            }
        }
        (Some(Value::Array(b)), Some(Value::Array(a))) if b != a && !(all_scalar(b) && all_scalar(a)) => {
            if let Some(kind) = name.and_then(keyed_list)
                && diff_keyed(path, &kind, b, a, out)
            {
                return;
            }
            for i in 0..b.len().max(a.len()) {
                diff_at(&format!("{path}[{i}]"), None, b.get(i), a.get(i), out);
            }
        }
        (b, a) => {
            if b != a {
                out.push(Change {
                    path: path.to_owned(),
                    before: b.cloned(),
                    after: a.cloned(),
                });
            }
        }
    }
}

fn all_scalar(items: &[Value]) -> bool {
    items.iter().all(|v| !v.is_object() && !v.is_array())
}

type KeyFn = fn(&Value) -> Option<String>;

/// How the elements of a keyed list are told apart across versions.
struct Keyed {
    /// Identities to try in order; the first that is present and unique on
    /// both sides is used (else the list is compared by index).
    keys: &'static [KeyFn],
    /// What a person reads in the path instead of the key, when every
    /// element has one and they are unique.
    label: Option<KeyFn>,
    /// Whether an element is compared through its `settingInstance` (a
    /// settings catalog setting: `settings[id].choiceSettingValue.value`).
    through_instance: bool,
}

fn keyed_list(name: &str) -> Option<Keyed> {
    let keyed = |keys: &'static [KeyFn]| Keyed {
        keys,
        label: None,
        through_instance: false,
    };
    Some(match name {
        "settings" => Keyed {
            through_instance: true,
            ..keyed(&[setting_id])
        },
        "children" => keyed(&[child_setting_id]),
        "assignments" => keyed(&[assignment_target, assignment_target_and_filter]),
        "definitionValues" => Keyed {
            label: Some(definition_label),
            ..keyed(&[definition_value_id])
        },
        "presentationValues" => Keyed {
            label: Some(presentation_label),
            ..keyed(&[presentation_value_id])
        },
        "scheduledActionsForRule" => keyed(&[rule_name]),
        "scheduledActionConfigurations" => keyed(&[action_type, action_type_and_grace]),
        "apps" => keyed(&[app_identifier]),
        _ => return None,
    })
}

fn str_at(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer).and_then(Value::as_str).map(str::to_owned)
}

fn setting_id(v: &Value) -> Option<String> {
    str_at(v, "/settingInstance/settingDefinitionId")
}

fn child_setting_id(v: &Value) -> Option<String> {
    str_at(v, "/settingDefinitionId")
}

/// "required: group {id}", "excluded group {id}", "all devices", …
fn assignment_target(v: &Value) -> Option<String> {
    let t = v.get("target")?;
    let odata = t.get("@odata.type")?.as_str()?;
    let group = t.get("groupId").and_then(Value::as_str);
    let who = match (odata, group) {
        ("#microsoft.graph.groupAssignmentTarget", Some(g)) => format!("group {g}"),
        ("#microsoft.graph.exclusionGroupAssignmentTarget", Some(g)) => format!("excluded group {g}"),
        ("#microsoft.graph.allDevicesAssignmentTarget", _) => "all devices".to_owned(),
        ("#microsoft.graph.allLicensedUsersAssignmentTarget", _) => "all licensed users".to_owned(),
        (other, g) => {
            let short = other.trim_start_matches("#microsoft.graph.");
            match g {
                Some(g) => format!("{short} {g}"),
                None => short.to_owned(),
            }
        }
    };
    Some(match v.get("intent").and_then(Value::as_str) {
        Some(intent) => format!("{intent}: {who}"),
        None => who,
    })
}

fn assignment_target_and_filter(v: &Value) -> Option<String> {
    let who = assignment_target(v)?;
    let id = str_at(v, &format!("/target/{FILTER_ID}")).filter(|f| f != NO_FILTER);
    Some(match id {
        Some(id) => {
            let mode = str_at(v, &format!("/target/{FILTER_TYPE}")).unwrap_or_default();
            format!("{who} with filter {id} ({mode})")
        }
        None => who,
    })
}

fn definition_label(v: &Value) -> Option<String> {
    str_at(v, "/definition/displayName")
}

fn presentation_label(v: &Value) -> Option<String> {
    str_at(v, "/presentation/label")
}

fn rule_name(v: &Value) -> Option<String> {
    str_at(v, "/ruleName")
}

fn action_type(v: &Value) -> Option<String> {
    str_at(v, "/actionType")
}

fn action_type_and_grace(v: &Value) -> Option<String> {
    let grace = v.get("gracePeriodHours").map_or_else(String::new, Value::to_string);
    Some(format!("{} after {grace} h", action_type(v)?))
}

/// A protected app by its bundle, package or app id (the identifier's one
/// id property), else the whole identifier.
fn app_identifier(v: &Value) -> Option<String> {
    let id = v.get("mobileAppIdentifier")?;
    let own = id.as_object().and_then(|m| {
        m.iter()
            .find(|(k, _)| k.as_str() != "@odata.type")
            .and_then(|(_, v)| v.as_str())
    });
    Some(own.map_or_else(|| canonical_json(id), str::to_owned))
}

/// Compares two lists element by element by the kind's key; `false` when
/// no key identifies every element uniquely on both sides.
fn diff_keyed(path: &str, kind: &Keyed, before: &[Value], after: &[Value], out: &mut Vec<Change>) -> bool {
    let unique = |items: &[Value], key: KeyFn| -> Option<Vec<String>> {
        let keys: Option<Vec<String>> = items.iter().map(key).collect();
        let keys = keys?;
        let distinct: HashSet<&String> = keys.iter().collect();
        (distinct.len() == keys.len()).then_some(keys)
    };
    let Some((bk, ak)) = kind
        .keys
        .iter()
        .find_map(|key| Some((unique(before, *key)?, unique(after, *key)?)))
    else {
        return false;
    };
    let b: HashMap<&String, &Value> = bk.iter().zip(before).collect();
    let a: HashMap<&String, &Value> = ak.iter().zip(after).collect();
    // Before's order, then what only after has: both are sorted the
    // normalized way.
    let mut order: Vec<&String> = bk.iter().collect();
    order.extend(ak.iter().filter(|k| !b.contains_key(k)));
    // Labels when they name every element once; keys otherwise.
    let labels: Option<Vec<String>> = kind.label.and_then(|label| {
        let ls: Option<Vec<String>> = order
            .iter()
            .map(|k| {
                a.get(k)
                    .and_then(|v| label(v))
                    .or_else(|| b.get(k).and_then(|v| label(v)))
            })
            .collect();
        let ls = ls?;
        let distinct: HashSet<&String> = ls.iter().collect();
        (distinct.len() == ls.len()).then_some(ls)
    });
    for (i, k) in order.iter().enumerate() {
        let segment = labels.as_ref().and_then(|l| l.get(i)).unwrap_or(k);
        let here = format!("{path}[{segment}]");
        match (b.get(k), a.get(k)) {
            (Some(x), Some(y)) if kind.through_instance => {
                diff_at(&here, None, Some(&through_instance(x)), Some(&through_instance(y)), out);
            }
            (Some(x), Some(y)) => diff_at(&here, None, Some(x), Some(y), out),
            (x, y) => out.push(Change {
                path: here,
                before: x.map(|v| (*v).clone()),
                after: y.map(|v| (*v).clone()),
            }),
        }
    }
    true
}

/// A setting seen through its instance: the instance's members and the
/// setting's other members side by side.
fn through_instance(v: &Value) -> Value {
    let Some(Value::Object(instance)) = v.get("settingInstance") else {
        return v.clone();
    };
    let mut m: Map<String, Value> = instance.clone();
    if let Value::Object(outer) = v {
        for (k, child) in outer {
            if k != "settingInstance" {
                m.insert(k.clone(), child.clone());
            }
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    use super::*;
    use crate::clean::read_only_paths;

    // -- fixtures -----------------------------------------------------------

    fn items(tenant: &str, ty: ObjectType) -> Vec<Value> {
        let path = format!("{tenant}/beta/{}.json", ty.descriptor().collection);
        let file = crate::DEMO_TENANTS
            .get_file(&path)
            .unwrap_or_else(|| panic!("no fixture {path}"));
        let doc: Value = serde_json::from_slice(file.contents()).unwrap();
        doc["value"].as_array().unwrap().clone()
    }

    fn name_of(ty: ObjectType, v: &Value) -> String {
        v[ty.descriptor().name_property].as_str().unwrap().to_owned()
    }

    fn item(tenant: &str, ty: ObjectType, name: &str) -> Value {
        items(tenant, ty)
            .into_iter()
            .find(|v| name_of(ty, v) == name)
            .unwrap_or_else(|| panic!("{tenant} has no {ty} {name:?}"))
    }

    /// The object with its assignments' group and filter ids replaced by
    /// their display names in its tenant, as a cross-tenant comparison
    /// maps them.
    fn with_names(tenant: &str, v: &Value) -> Value {
        let names = |ty| -> HashMap<String, String> {
            items(tenant, ty)
                .iter()
                .map(|e| (e["id"].as_str().unwrap().to_owned(), name_of(ty, e)))
                .collect()
        };
        let groups = names(ObjectType::Group);
        let filters = names(ObjectType::AssignmentFilter);
        let mut v = v.clone();
        for a in v["assignments"].as_array_mut().into_iter().flatten() {
            let t = &mut a["target"];
            if let Some(g) = t["groupId"].as_str() {
                t["groupId"] = json!(format!("group:{}", groups[g]));
            }
            if let Some(f) = t[FILTER_ID].as_str().filter(|f| *f != NO_FILTER) {
                t[FILTER_ID] = json!(format!("filter:{}", filters[f]));
            }
        }
        v
    }

    fn without_assignments(v: &Value) -> Value {
        let mut v = v.clone();
        if let Value::Object(m) = &mut v {
            m.remove("assignments");
        }
        v
    }

    fn hash(ty: ObjectType, v: &Value) -> String {
        version_hash(&normalize(ty, v))
    }

    /// Every object of both demo tenants.
    fn pool() -> &'static [(ObjectType, Value)] {
        static POOL: OnceLock<Vec<(ObjectType, Value)>> = OnceLock::new();
        POOL.get_or_init(|| {
            let mut out = Vec::new();
            for tenant in ["contoso", "fabrikam"] {
                for ty in ObjectType::ALL {
                    out.extend(items(tenant, ty).into_iter().map(|v| (ty, v)));
                }
            }
            out
        })
    }

    /// What must not survive normalization anywhere in `n`: read-only
    /// properties (as the local Graph finds them), the type's derived ones,
    /// assignments' `sourceId`, null and empty-array members, unsorted keys.
    fn leftovers(ty: ObjectType, n: &Value) -> Vec<String> {
        fn walk(v: &Value, path: &str, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    let keys: Vec<&String> = m.keys().collect();
                    if keys.windows(2).any(|w| w[0] >= w[1]) {
                        out.push(format!("{path}: keys not sorted"));
                    }
                    for (k, child) in m {
                        if is_empty(child) {
                            out.push(format!("{path}.{k}: {child}"));
                        }
                        walk(child, &format!("{path}.{k}"), out);
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
        let mut out = read_only_paths(ty, n);
        for k in derived_for(ty) {
            if n.get(*k).is_some() {
                out.push((*k).to_owned());
            }
        }
        for (i, a) in n["assignments"].as_array().into_iter().flatten().enumerate() {
            if a.get("sourceId").is_some() {
                out.push(format!("assignments[{i}].sourceId"));
            }
        }
        walk(n, "", &mut out);
        out
    }

    // -- fixtures: what goes, what stays ------------------------------------

    #[test]
    fn fixture_objects_lose_every_read_only_and_volatile_field() {
        for (ty, v) in pool() {
            let n = normalize(*ty, v);
            let left = leftovers(*ty, &n);
            assert!(left.is_empty(), "{ty} {}: {left:?}", name_of(*ty, v));
            // What identifies and configures it stays.
            assert_eq!(n["@odata.type"], v["@odata.type"]);
            assert_eq!(n[ty.descriptor().name_property], v[ty.descriptor().name_property]);
            assert_eq!(
                n["assignments"].as_array().map(Vec::len),
                v["assignments"].as_array().map(Vec::len).filter(|l| *l > 0)
            );
        }
    }

    #[test]
    fn settings_catalog_settings_lose_positional_ids_and_keep_their_instances() {
        let v = item(
            "contoso",
            ObjectType::SettingsCatalogPolicy,
            "WIN - Microsoft Defender Antivirus",
        );
        let n = normalize(ObjectType::SettingsCatalogPolicy, &v);
        let settings = n["settings"].as_array().unwrap();
        assert_eq!(settings.len(), 31);
        assert_eq!(settings.len(), v["settingCount"].as_u64().unwrap() as usize);
        let ids: Vec<&str> = settings
            .iter()
            .map(|s| {
                s.pointer("/settingInstance/settingDefinitionId")
                    .unwrap()
                    .as_str()
                    .unwrap()
            })
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted);
        for s in settings {
            assert!(s.get("id").is_none());
            assert!(
                s.pointer("/settingInstance/@odata.type").is_some(),
                "polymorphic type kept: {s}"
            );
        }
        assert!(n.get("settingCount").is_none() && n.get("isAssigned").is_none());
        assert_eq!(n["roleScopeTagIds"], json!(["0"]));
    }

    #[test]
    fn administrative_templates_name_definitions_by_bind() {
        let v = item(
            "contoso",
            ObjectType::AdministrativeTemplate,
            "WIN - Microsoft Edge (ADMX) - SmartScreen and startup",
        );
        let n = normalize(ObjectType::AdministrativeTemplate, &v);
        let raw = v["definitionValues"].as_array().unwrap();
        let dvs = n["definitionValues"].as_array().unwrap();
        assert_eq!(dvs.len(), raw.len());
        for dv in dvs {
            let bind = dv["definition@odata.bind"].as_str().unwrap();
            let id = bind_ids(bind).pop().unwrap();
            let source = raw.iter().find(|r| r["definition"]["id"] == json!(id)).unwrap();
            assert_eq!(bind, definition_bind(&id));
            assert_eq!(dv["definition"]["displayName"], source["definition"]["displayName"]);
            assert_eq!(dv["definition"]["categoryPath"], source["definition"]["categoryPath"]);
            assert!(dv["definition"].get("explainText").is_none());
            assert_eq!(dv["enabled"], source["enabled"]);
            for pv in dv["presentationValues"].as_array().into_iter().flatten() {
                let pbind = pv["presentation@odata.bind"].as_str().unwrap();
                assert_eq!(bind_ids(pbind)[0], id, "{pbind}");
                assert!(pv["presentation"]["label"].is_string());
                assert!(pv["presentation"].get("items").is_none());
            }
        }
        let keys: Vec<String> = dvs.iter().map(|d| definition_value_id(d).unwrap()).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn a_definition_read_inline_and_one_written_as_a_bind_normalize_alike() {
        let read = json!({
            "@odata.type": "#microsoft.graph.groupPolicyConfiguration",
            "displayName": "P",
            "definitionValues": [{
                "id": "dv-1",
                "enabled": true,
                "definition": {"id": "def 1", "displayName": "D", "explainText": "x", "version": "1.0"},
                "presentationValues": [{
                    "@odata.type": "#microsoft.graph.groupPolicyPresentationValueText",
                    "id": "pv-1",
                    "value": "4",
                    "presentation": {"id": "pres-1", "label": "L", "items": [{"value": "1"}]}
                }]
            }]
        });
        let written = json!({
            "@odata.type": "#microsoft.graph.groupPolicyConfiguration",
            "displayName": "P",
            "definitionValues": [{
                "enabled": true,
                "definition": {"displayName": "D"},
                "definition@odata.bind": "http://127.0.0.1:8080/beta/deviceManagement/groupPolicyDefinitions('def%201')",
                "presentationValues": [{
                    "@odata.type": "#microsoft.graph.groupPolicyPresentationValueText",
                    "value": "4",
                    "presentation": {"label": "L"},
                    "presentation@odata.bind": "http://127.0.0.1:8080/beta/deviceManagement/groupPolicyDefinitions('def%201')/presentations('pres-1')"
                }]
            }]
        });
        let ty = ObjectType::AdministrativeTemplate;
        assert_eq!(normalize(ty, &read), normalize(ty, &written));
        let n = normalize(ty, &read);
        assert_eq!(
            n["definitionValues"][0]["definition@odata.bind"],
            "https://graph.microsoft.com/beta/deviceManagement/groupPolicyDefinitions('def%201')"
        );
        assert_eq!(
            n["definitionValues"][0]["presentationValues"][0]["presentation@odata.bind"],
            "https://graph.microsoft.com/beta/deviceManagement/groupPolicyDefinitions('def%201')/presentations('pres-1')"
        );
        assert!(read_only_paths(ty, &n).is_empty());
    }

    #[test]
    fn apps_and_app_protection_lose_counts_and_derived_ids() {
        let ty = ObjectType::MobileApp;
        for v in items("contoso", ty) {
            let n = normalize(ty, &v);
            for k in [
                "uploadState",
                "publishingState",
                "size",
                "dependentAppCount",
                "usedLicenseCount",
                "isAssigned",
            ] {
                assert!(n.get(k).is_none(), "{k} in {n}");
            }
            for a in n["assignments"].as_array().unwrap() {
                assert!(a.get("id").is_none() && a.get("sourceId").is_none());
                assert!(a["intent"].is_string());
                assert_eq!(a["@odata.type"], "#microsoft.graph.mobileAppAssignment");
            }
        }
        let ty = ObjectType::AppProtectionPolicy;
        let v = item("contoso", ty, "iOS - App protection - Corporate data");
        let n = normalize(ty, &v);
        assert!(n.get("deployedAppCount").is_none() && n.get("version").is_none());
        let apps = n["apps"].as_array().unwrap();
        assert_eq!(apps.len(), v["apps"].as_array().unwrap().len());
        for app in apps {
            assert_eq!(
                app.as_object().unwrap().keys().collect::<Vec<_>>(),
                vec!["mobileAppIdentifier"]
            );
        }
        let bundles: Vec<&str> = apps
            .iter()
            .map(|a| a["mobileAppIdentifier"]["bundleId"].as_str().unwrap())
            .collect();
        let mut sorted = bundles.clone();
        sorted.sort_unstable();
        assert_eq!(bundles, sorted);
    }

    // -- fixtures: the two tenants ------------------------------------------

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Same {
        /// Same settings and the same assignments by name.
        Identical,
        /// Same settings, other assignments.
        Settings,
        /// Different settings.
        Changed,
    }

    /// fixtures/tenants/README.md, "Deliberate differences", for every
    /// object both tenants have.
    const BOTH: &[(ObjectType, &str, Same)] = &[
        (ObjectType::Group, "SG-Intune-Windows-Devices", Same::Identical),
        (ObjectType::Group, "SG-Intune-Windows-Pilot", Same::Identical),
        (ObjectType::Group, "SG-Intune-iOS-Devices", Same::Identical),
        (ObjectType::Group, "SG-Intune-Android-Enterprise", Same::Identical),
        (ObjectType::Group, "SG-Intune-macOS-Devices", Same::Identical),
        (ObjectType::Group, "SG-Users-All-Staff", Same::Identical),
        (ObjectType::Group, "SG-Users-Finance", Same::Identical),
        (ObjectType::Group, "SG-Users-IT-Admins", Same::Identical),
        (
            ObjectType::AssignmentFilter,
            "Windows - Corporate-owned",
            Same::Identical,
        ),
        (
            ObjectType::AssignmentFilter,
            "Windows - Virtual machines",
            Same::Identical,
        ),
        (ObjectType::AssignmentFilter, "iOS - Corporate iPhones", Same::Identical),
        (
            ObjectType::DeviceConfiguration,
            "WIN - Device restrictions - Baseline",
            Same::Identical,
        ),
        (
            ObjectType::DeviceConfiguration,
            "WIN - Custom OMA-URI - Start and widgets",
            Same::Identical,
        ),
        (
            ObjectType::DeviceConfiguration,
            "WIN - Endpoint protection - BitLocker and Firewall",
            Same::Changed,
        ),
        (
            ObjectType::DeviceConfiguration,
            "WIN - Update ring - Broad",
            Same::Changed,
        ),
        (
            ObjectType::DeviceConfiguration,
            "iOS - Device restrictions",
            Same::Settings,
        ),
        (
            ObjectType::SettingsCatalogPolicy,
            "WIN - Security hardening baseline",
            Same::Identical,
        ),
        (
            ObjectType::SettingsCatalogPolicy,
            "WIN - Microsoft Defender Antivirus",
            Same::Changed,
        ),
        (
            ObjectType::SettingsCatalogPolicy,
            "WIN - OneDrive Known Folder Move",
            Same::Changed,
        ),
        (
            ObjectType::CompliancePolicy,
            "iOS - Compliance - Minimum OS and passcode",
            Same::Identical,
        ),
        (
            ObjectType::CompliancePolicy,
            "WIN - Compliance - Corporate",
            Same::Changed,
        ),
        (
            ObjectType::CompliancePolicy,
            "Android - Compliance - Work profile",
            Same::Settings,
        ),
        (
            ObjectType::AdministrativeTemplate,
            "WIN - Microsoft Edge (ADMX) - SmartScreen and startup",
            Same::Identical,
        ),
        (
            ObjectType::AdministrativeTemplate,
            "WIN - Remote Desktop (ADMX) - Hardening",
            Same::Changed,
        ),
        (
            ObjectType::PowershellScript,
            "WIN - Remove consumer apps",
            Same::Identical,
        ),
        (
            ObjectType::PowershellScript,
            "WIN - Escrow BitLocker recovery key",
            Same::Changed,
        ),
        (
            ObjectType::MobileApp,
            "Microsoft 365 Apps for Windows 10 and later",
            Same::Identical,
        ),
        (ObjectType::MobileApp, "7-Zip (x64)", Same::Changed),
        (ObjectType::MobileApp, "Microsoft Outlook", Same::Settings),
        (ObjectType::MobileApp, "Microsoft Teams", Same::Settings),
        (
            ObjectType::AppProtectionPolicy,
            "iOS - App protection - Corporate data",
            Same::Identical,
        ),
        (
            ObjectType::AppProtectionPolicy,
            "Android - App protection - Corporate data",
            Same::Changed,
        ),
    ];

    #[test]
    fn the_same_policy_in_two_tenants_hashes_the_same_and_a_changed_one_does_not() {
        // The table covers every object both tenants have.
        for ty in ObjectType::ALL {
            let fabrikam: HashSet<String> = items("fabrikam", ty).iter().map(|v| name_of(ty, v)).collect();
            for v in items("contoso", ty) {
                let name = name_of(ty, &v);
                if fabrikam.contains(&name) {
                    assert!(
                        BOTH.iter().any(|(t, n, _)| *t == ty && *n == name),
                        "{ty} {name:?} not in BOTH"
                    );
                }
            }
        }
        for &(ty, name, same) in BOTH {
            let c = item("contoso", ty, name);
            let f = item("fabrikam", ty, name);
            // Raw, they always differ (ids, timestamps).
            assert_ne!(canonical_json(&c), canonical_json(&f), "{name}");
            let settings_equal = hash(ty, &without_assignments(&c)) == hash(ty, &without_assignments(&f));
            let all_equal = hash(ty, &with_names("contoso", &c)) == hash(ty, &with_names("fabrikam", &f));
            let why = || {
                diff(
                    &normalize(ty, &with_names("contoso", &c)),
                    &normalize(ty, &with_names("fabrikam", &f)),
                )
            };
            match same {
                Same::Identical => assert!(all_equal && settings_equal, "{ty} {name}: {:#?}", why()),
                Same::Settings => assert!(settings_equal && !all_equal, "{ty} {name}: {:#?}", why()),
                Same::Changed => assert!(!settings_equal, "{ty} {name}"),
            }
        }
    }

    fn fixture_diff(ty: ObjectType, name: &str) -> Vec<Change> {
        let c = normalize(ty, &with_names("contoso", &item("contoso", ty, name)));
        let f = normalize(ty, &with_names("fabrikam", &item("fabrikam", ty, name)));
        diff(&c, &f)
    }

    #[test]
    fn diff_names_the_changed_defender_setting() {
        let changes = fixture_diff(ObjectType::SettingsCatalogPolicy, "WIN - Microsoft Defender Antivirus");
        let setting: Vec<&Change> = changes.iter().filter(|c| c.path.starts_with("settings")).collect();
        assert_eq!(
            setting,
            vec![&Change {
                path: "settings[device_vendor_msft_policy_config_defender_cloudblocklevel].choiceSettingValue.value"
                    .into(),
                before: Some(json!("device_vendor_msft_policy_config_defender_cloudblocklevel_2")),
                after: Some(json!("device_vendor_msft_policy_config_defender_cloudblocklevel_4")),
            }],
            "{changes:#?}"
        );
    }

    #[test]
    fn diff_names_changed_properties_of_plain_policies() {
        let changes = fixture_diff(ObjectType::CompliancePolicy, "WIN - Compliance - Corporate");
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert!(paths.contains(&"passwordMinimumLength"), "{paths:?}");
        assert!(paths.contains(&"osMinimumVersion"), "{paths:?}");
        let length = changes.iter().find(|c| c.path == "passwordMinimumLength").unwrap();
        assert_eq!(
            (length.before.clone(), length.after.clone()),
            (Some(json!(8)), Some(json!(12)))
        );
        let ring = fixture_diff(ObjectType::DeviceConfiguration, "WIN - Update ring - Broad");
        let ring: Vec<&str> = ring.iter().map(|c| c.path.as_str()).collect();
        assert!(ring.contains(&"qualityUpdatesDeferralPeriodInDays"), "{ring:?}");
    }

    #[test]
    fn diff_names_definition_values_by_their_definition() {
        let changes = fixture_diff(
            ObjectType::AdministrativeTemplate,
            "WIN - Remote Desktop (ADMX) - Hardening",
        );
        assert!(!changes.is_empty());
        for c in &changes {
            assert!(
                c.path.starts_with("definitionValues[") && !c.path.contains("[0]"),
                "{c:?}"
            );
            assert!(
                !c.path.contains("groupPolicyDefinitions"),
                "named by display name: {c:?}"
            );
        }
    }

    #[test]
    fn diff_names_assignments_by_target() {
        let changes = fixture_diff(ObjectType::DeviceConfiguration, "iOS - Device restrictions");
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert!(
            paths.contains(&"assignments[group group:SG-Intune-iOS-Devices]"),
            "{paths:?}"
        );
        assert!(paths.contains(&"assignments[all devices]"), "{paths:?}");
        assert!(
            paths.contains(&"assignments[excluded group group:SG-Users-IT-Admins]"),
            "{paths:?}"
        );
        let removed = changes
            .iter()
            .find(|c| c.path == "assignments[group group:SG-Intune-iOS-Devices]")
            .unwrap();
        assert!(removed.before.is_some() && removed.after.is_none());
        // A list that is gone is compared as empty: one change per element.
        let v = item("contoso", ObjectType::DeviceConfiguration, "iOS - Device restrictions");
        let n = normalize(ObjectType::DeviceConfiguration, &with_names("contoso", &v));
        let unassigned = diff(&n, &without_assignments(&n));
        assert_eq!(
            unassigned.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(),
            vec!["assignments[group group:SG-Intune-iOS-Devices]"]
        );
        assert!(unassigned[0].before.is_some() && unassigned[0].after.is_none());
        let teams = fixture_diff(ObjectType::MobileApp, "Microsoft Teams");
        assert!(teams.iter().all(|c| c.path.starts_with("assignments[")), "{teams:#?}");
        assert!(
            teams.iter().any(|c| c.path.starts_with("assignments[required: ")),
            "{teams:#?}"
        );
    }

    // -- unit ---------------------------------------------------------------

    #[test]
    fn null_empty_array_and_absent_are_one() {
        let ty = ObjectType::DeviceConfiguration;
        let absent = json!({"@odata.type": "#microsoft.graph.x", "a": 1, "nested": {"b": 2}});
        let null = json!({"@odata.type": "#microsoft.graph.x", "a": 1, "c": null, "nested": {"b": 2, "d": null}});
        let empty = json!({"@odata.type": "#microsoft.graph.x", "a": 1, "c": [], "nested": {"b": 2, "d": []}});
        assert_eq!(normalize(ty, &absent), normalize(ty, &null));
        assert_eq!(normalize(ty, &absent), normalize(ty, &empty));
        // In a list, null holds a position.
        assert_eq!(normalize(ty, &json!({"l": [null, 1]}))["l"], json!([null, 1]));
    }

    #[test]
    fn annotations_and_read_only_go_at_any_depth_but_type_and_bind_stay() {
        let ty = ObjectType::DeviceConfiguration;
        let v = json!({
            "@odata.context": "https://graph.microsoft.com/beta/$metadata#x",
            "@odata.type": "#microsoft.graph.windows10CustomConfiguration",
            "@odata.etag": "W/\"1\"",
            "id": "1",
            "version": 3,
            "assignments@odata.navigationLink": "x",
            "roleScopeTagIds@odata.type": "#Collection(String)",
            "roleScopeTagIds": ["9", "0"],
            "omaSettings": [
                {"@odata.type": "#microsoft.graph.omaSettingString", "value": "b", "lastModifiedDateTime": "t"},
                {"@odata.type": "#microsoft.graph.omaSettingInteger", "value": 1.0, "@odata.id": "x"}
            ],
            "x@odata.bind": "https://graph.microsoft.com/beta/y('1')"
        });
        assert_eq!(
            canonical_json(&normalize(ty, &v)),
            concat!(
                r##"{"@odata.type":"#microsoft.graph.windows10CustomConfiguration","##,
                r##""omaSettings":[{"@odata.type":"#microsoft.graph.omaSettingString","value":"b"},"##,
                r##"{"@odata.type":"#microsoft.graph.omaSettingInteger","value":1}],"##,
                r##""roleScopeTagIds":["0","9"],"x@odata.bind":"https://graph.microsoft.com/beta/y('1')"}"##
            )
        );
    }

    #[test]
    fn assignments_sort_by_target_and_no_filter_has_one_form() {
        let ty = ObjectType::CompliancePolicy;
        let a = json!({"assignments": [
            {"id": "p_g2", "sourceId": "p", "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": "g2"}},
            {"id": "p_g1", "sourceId": "p", "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": "g1",
                FILTER_ID: null, FILTER_TYPE: "none"}},
            {"target": {"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget", FILTER_ID: "f", FILTER_TYPE: "include"}}
        ]});
        let n = normalize(ty, &a);
        assert_eq!(
            n["assignments"],
            json!([
                {"target": {"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget", FILTER_ID: "f", FILTER_TYPE: "include"}},
                {"target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", FILTER_ID: NO_FILTER, FILTER_TYPE: "none", "groupId": "g1"}},
                {"target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", FILTER_ID: NO_FILTER, FILTER_TYPE: "none", "groupId": "g2"}}
            ])
        );
        // Whatever the form read, the one form round-trips through Graph's.
        for e in n["assignments"].as_array().unwrap() {
            let parsed = crate::Assignment::from_graph(e).unwrap();
            assert_eq!(
                normalize(ty, &json!({"assignments": [parsed.to_graph()]}))["assignments"][0],
                *e
            );
        }
    }

    #[test]
    fn compliance_actions_sort_by_type_and_grace_period() {
        let ty = ObjectType::CompliancePolicy;
        let v = json!({"scheduledActionsForRule": [{"id": "r", "ruleName": "PasswordRequired", "scheduledActionConfigurations": [
            {"id": "2", "actionType": "retire", "gracePeriodHours": 4320},
            {"id": "3", "actionType": "notification", "gracePeriodHours": 72},
            {"id": "4", "actionType": "notification", "gracePeriodHours": 24, "notificationMessageCCList": ["b", "a"]},
            {"id": "1", "actionType": "block", "gracePeriodHours": 0}
        ]}]});
        let n = normalize(ty, &v);
        assert_eq!(
            n,
            json!({"scheduledActionsForRule": [{"ruleName": "PasswordRequired", "scheduledActionConfigurations": [
                {"actionType": "block", "gracePeriodHours": 0},
                {"actionType": "notification", "gracePeriodHours": 24, "notificationMessageCCList": ["a", "b"]},
                {"actionType": "notification", "gracePeriodHours": 72},
                {"actionType": "retire", "gracePeriodHours": 4320}
            ]}]})
        );
        let mut later = v.clone();
        later["scheduledActionsForRule"][0]["scheduledActionConfigurations"][1]["gracePeriodHours"] = json!(96);
        let changes = diff(&n, &normalize(ty, &later));
        assert_eq!(
            changes,
            vec![
                Change {
                    path: "scheduledActionsForRule[PasswordRequired].scheduledActionConfigurations[notification after 72 h]".into(),
                    before: Some(json!({"actionType": "notification", "gracePeriodHours": 72})),
                    after: None,
                },
                Change {
                    path: "scheduledActionsForRule[PasswordRequired].scheduledActionConfigurations[notification after 96 h]".into(),
                    before: None,
                    after: Some(json!({"actionType": "notification", "gracePeriodHours": 96})),
                },
            ]
        );
    }

    #[test]
    fn canonical_json_sorts_keys_without_whitespace_and_hashes_with_sha256() {
        let mut m = Map::new();
        m.insert("b".into(), json!([1, {"z": true, "a": "é\"\n"}]));
        m.insert("a".into(), json!(null));
        let v = Value::Object(m);
        assert_eq!(canonical_json(&v), r#"{"a":null,"b":[1,{"a":"é\"\n","z":true}]}"#);
        // sha256("{}")
        assert_eq!(
            version_hash(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(version_hash(&v).len(), 64);
    }

    #[test]
    fn diff_compares_scalar_lists_whole_and_other_lists_by_index() {
        let before = json!({"a": 1, "tags": ["x", "y"], "rules": [{"p": 1}, {"p": 2}], "gone": true});
        let after = json!({"a": 1, "tags": ["x", "y", "z"], "rules": [{"p": 1}, {"p": 3}, {"p": 4}], "new": "n"});
        assert_eq!(
            diff(&before, &after),
            vec![
                Change {
                    path: "gone".into(),
                    before: Some(json!(true)),
                    after: None
                },
                Change {
                    path: "new".into(),
                    before: None,
                    after: Some(json!("n"))
                },
                Change {
                    path: "rules[1].p".into(),
                    before: Some(json!(2)),
                    after: Some(json!(3))
                },
                Change {
                    path: "rules[2]".into(),
                    before: None,
                    after: Some(json!({"p": 4}))
                },
                Change {
                    path: "tags".into(),
                    before: Some(json!(["x", "y"])),
                    after: Some(json!(["x", "y", "z"]))
                },
            ]
        );
        assert!(diff(&before, &before).is_empty());
    }

    #[test]
    fn diff_falls_back_to_indexes_when_keys_are_not_unique() {
        let s = |id: &str, v: i32| json!({"settingInstance": {"settingDefinitionId": id, "simpleSettingValue": {"value": v}}});
        let before = json!({"settings": [s("a", 1), s("a", 2)]});
        let after = json!({"settings": [s("a", 1), s("a", 3)]});
        assert_eq!(
            diff(&before, &after)[0].path,
            "settings[1].settingInstance.simpleSettingValue.value"
        );
        let after = json!({"settings": [s("a", 1), s("b", 2)]});
        let unique_before = json!({"settings": [s("a", 1), s("c", 2)]});
        let paths: Vec<String> = diff(&unique_before, &after).into_iter().map(|c| c.path).collect();
        assert_eq!(paths, vec!["settings[c]", "settings[b]"]);
    }

    // -- properties ---------------------------------------------------------

    /// Arrays `normalize` sorts, by the key holding them (top level only
    /// for the first group).
    fn unordered(ty: ObjectType, key: &str, top: bool) -> bool {
        let top_level = match key {
            "assignments" => true,
            "settings" => ty == ObjectType::SettingsCatalogPolicy,
            "definitionValues" => ty == ObjectType::AdministrativeTemplate,
            "scheduledActionsForRule" => ty == ObjectType::CompliancePolicy,
            "apps" => ty == ObjectType::AppProtectionPolicy,
            _ => false,
        };
        (top && top_level)
            || matches!(
                key,
                "children"
                    | "presentationValues"
                    | "scheduledActionConfigurations"
                    | "roleScopeTagIds"
                    | "roleScopeTags"
                    | "notificationMessageCCList"
            )
    }

    const ADDABLE: &[&str] = &[
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
        "@odata.nextLink",
        "assignments@odata.navigationLink",
        "settings@odata.associationLink",
        "roleScopeTagIds@odata.type",
    ];

    fn noise(rng: &mut StdRng) -> Value {
        match rng.gen_range(0..4) {
            0 => json!(format!(
                "{:08x}-0000-4000-8000-{:012x}",
                rng.r#gen::<u32>(),
                rng.r#gen::<u64>() & 0xffff_ffff_ffff
            )),
            1 => json!(format!(
                "2025-0{}-1{}T08:00:00.{:07}Z",
                rng.gen_range(1..10),
                rng.gen_range(0..10),
                rng.gen_range(0..10_000_000)
            )),
            2 => json!(rng.gen_range(0..1000)),
            _ => json!("https://graph.microsoft.com/beta/$metadata#deviceManagement"),
        }
    }

    /// `v` as Graph might send the same configuration another time: keys
    /// in another order, unordered arrays shuffled, volatile properties
    /// changed or added, "not set" and "no filter" in another form.
    fn mess(ty: ObjectType, v: &Value, rng: &mut StdRng) -> Value {
        mess_at(ty, v, None, 0, rng)
    }

    /// `depth` 0 is the object itself, 1 its members' values.
    fn mess_at(ty: ObjectType, v: &Value, parent: Option<&str>, depth: usize, rng: &mut StdRng) -> Value {
        let top = depth == 0;
        // A definition's or presentation's id is the reference, not noise.
        let reference = matches!(parent, Some("definition" | "presentation"));
        match v {
            Value::Object(m) => {
                let mut entries: Vec<(String, Value)> = Vec::new();
                for (k, child) in m {
                    let volatile = is_volatile_key(k)
                        || (top && (read_only_for(ty).contains(&k.as_str()) || derived_for(ty).contains(&k.as_str())))
                        || (parent == Some("assignments") && k == "sourceId");
                    let c = if volatile && !(reference && k == "id") {
                        noise(rng)
                    } else if is_empty(child) {
                        // "Not set", in one of its forms (or absent).
                        match rng.gen_range(0..3) {
                            0 => continue,
                            1 => Value::Null,
                            _ => json!([]),
                        }
                    } else {
                        mess_at(ty, child, Some(k), depth + 1, rng)
                    };
                    entries.push((k.clone(), c));
                }
                if parent == Some("target")
                    && m.get(FILTER_ID) == Some(&json!(NO_FILTER))
                    && m.get(FILTER_TYPE) == Some(&json!("none"))
                {
                    match rng.gen_range(0..4) {
                        0 => entries.retain(|(k, _)| k != FILTER_ID),
                        1 => entries.retain(|(k, _)| k != FILTER_ID && k != FILTER_TYPE),
                        2 => entries
                            .iter_mut()
                            .filter(|(k, _)| k == FILTER_ID)
                            .for_each(|e| e.1 = Value::Null),
                        _ => {}
                    }
                }
                for _ in 0..rng.gen_range(0..3) {
                    let k = *ADDABLE.choose(rng).unwrap_or(&"id");
                    let refused = entries.iter().any(|(e, _)| e == k) || (reference && k == "id");
                    if !refused {
                        entries.push((k.to_owned(), noise(rng)));
                    }
                }
                entries.shuffle(rng);
                Value::Object(entries.into_iter().collect())
            }
            Value::Array(items) => {
                let mut out: Vec<Value> = items.iter().map(|e| mess_at(ty, e, parent, depth + 1, rng)).collect();
                if parent.is_some_and(|p| unordered(ty, p, depth == 1)) {
                    out.shuffle(rng);
                }
                Value::Array(out)
            }
            other => other.clone(),
        }
    }

    /// The JSON pointers of every scalar leaf of a normalized value that is
    /// a setting (not a bind reference).
    fn leaves(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    if !k.ends_with("@odata.bind") {
                        leaves(child, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    leaves(child, format!("{at}/{i}"), out);
                }
            }
            _ => out.push(at),
        }
    }

    fn objects(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                out.push(at.clone());
                for (k, child) in m {
                    objects(child, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    objects(child, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    fn arb_key() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "@odata.type",
                "id",
                "version",
                "lastModifiedDateTime",
                "x@odata.navigationLink",
                "assignments",
                "target",
                "intent",
                "sourceId",
                "groupId",
                FILTER_ID,
                FILTER_TYPE,
                "settings",
                "settingInstance",
                "settingDefinitionId",
                "children",
                "definitionValues",
                "definition",
                "definition@odata.bind",
                "presentationValues",
                "presentation",
                "presentation@odata.bind",
                "scheduledActionsForRule",
                "scheduledActionConfigurations",
                "actionType",
                "apps",
                "mobileAppIdentifier",
                "roleScopeTagIds",
            ])
            .prop_map(str::to_owned),
            "[a-z]{1,6}",
        ]
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1.0e9f64..1.0e9).prop_map(|f| json!(f)),
            prop::sample::select(vec![0.0f64, -0.0, 1.0, 2.5, 1.0e15]).prop_map(|f| json!(f)),
            "[a-z0-9 ('/)%]{0,10}".prop_map(Value::from),
            Just(json!(NO_FILTER)),
            Just(json!(
                "https://h/beta/deviceManagement/groupPolicyDefinitions('d1')/presentations('p1')"
            )),
        ];
        leaf.prop_recursive(5, 80, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((arb_key(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn arb_type() -> impl Strategy<Value = ObjectType> {
        prop::sample::select(ObjectType::ALL.to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn normalizing_twice_changes_nothing(i in any::<prop::sample::Index>(), seed in any::<u64>()) {
            let (ty, v) = &pool()[i.index(pool().len())];
            let messed = mess(*ty, v, &mut StdRng::seed_from_u64(seed));
            let n = normalize(*ty, &messed);
            prop_assert_eq!(normalize(*ty, &n), n);
        }

        #[test]
        fn normalizing_any_json_twice_changes_nothing(ty in arb_type(), v in arb_json()) {
            let n = normalize(ty, &v);
            prop_assert_eq!(canonical_json(&normalize(ty, &n)), canonical_json(&n));
            prop_assert_eq!(normalize(ty, &n), n);
        }

        #[test]
        fn order_and_volatile_fields_never_change_the_hash(i in any::<prop::sample::Index>(), seed in any::<u64>()) {
            let (ty, v) = &pool()[i.index(pool().len())];
            let mut rng = StdRng::seed_from_u64(seed);
            let (a, b) = (mess(*ty, v, &mut rng), mess(*ty, v, &mut rng));
            // The noise is real: read raw, the copies differ.
            prop_assert_ne!(canonical_json(&a), canonical_json(v));
            prop_assert_eq!(hash(*ty, &a), hash(*ty, v));
            prop_assert_eq!(hash(*ty, &b), hash(*ty, v));
            prop_assert!(diff(&normalize(*ty, &a), &normalize(*ty, &b)).is_empty());
        }

        #[test]
        fn null_empty_array_and_absent_hash_the_same(
            i in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            existing in any::<bool>(),
            new_key in "[a-z]{1,10}",
        ) {
            let (ty, v) = &pool()[i.index(pool().len())];
            let n = normalize(*ty, v);
            let mut places = Vec::new();
            objects(&n, String::new(), &mut places);
            let place = &places[at.index(places.len())];
            let key = match n.pointer(place).and_then(Value::as_object).and_then(|m| m.keys().next()) {
                Some(k) if existing => k.clone(),
                _ => new_key,
            };
            let with = |value: Option<Value>| {
                let mut x = n.clone();
                if let Some(Value::Object(m)) = x.pointer_mut(place) {
                    match value {
                        Some(value) => { m.insert(key.clone(), value); }
                        None => { m.remove(&key); }
                    }
                }
                hash(*ty, &x)
            };
            let absent = with(None);
            prop_assert_eq!(&with(Some(Value::Null)), &absent);
            prop_assert_eq!(&with(Some(json!([]))), &absent);
        }

        #[test]
        fn changing_a_setting_changes_the_hash(i in any::<prop::sample::Index>(), at in any::<prop::sample::Index>()) {
            let (ty, v) = &pool()[i.index(pool().len())];
            let n = normalize(*ty, v);
            let mut paths = Vec::new();
            leaves(&n, String::new(), &mut paths);
            let path = &paths[at.index(paths.len())];
            let mut changed = n.clone();
            let leaf = changed.pointer_mut(path).unwrap();
            *leaf = match leaf.take() {
                Value::String(s) => json!(format!("{s}-changed")),
                Value::Bool(b) => json!(!b),
                Value::Number(x) => match x.as_i64() {
                    Some(i) => json!(i.wrapping_add(1)),
                    None => json!(x.as_f64().unwrap_or(0.0) + 0.5),
                },
                other => panic!("not a setting leaf: {other}"),
            };
            prop_assert_ne!(hash(*ty, &changed), version_hash(&n));
            let changes = diff(&n, &normalize(*ty, &changed));
            prop_assert!(!changes.is_empty(), "{}", path);
        }
    }
}
