//! Operation parameters: parsed at the edge into typed values, per the
//! operation type's parameter specs, so nothing past the edge re-validates.
//!
//! Parameters arrive as JSON (HTTP API) or as `KEY=VALUE` strings (command
//! line); both are parsed by [`Params::parse`] against the same
//! [`ParamSpec`]s, canonicalised (lists sorted and de-duplicated, defaults
//! filled in) so the identity key derived from them (law 2) does not depend
//! on how the request was spelled.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::FieldError;

/// The shape a parameter value must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// An identifier: 1–128 characters of `A–Z a–z 0–9 . _ : -`.
    Id,
    /// A list of identifiers (a JSON array, or a comma-separated string).
    IdList,
    /// An integer within an inclusive range.
    Int {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// `true` or `false`.
    Bool,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
}

/// One accepted parameter of an operation type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// Its name.
    pub name: &'static str,
    /// Its shape.
    pub kind: ParamKind,
    /// Whether it must be given.
    pub required: bool,
    /// The value used when it is omitted.
    pub default: Option<&'static str>,
    /// One line of help.
    pub help: &'static str,
}

impl ParamSpec {
    /// A required identifier.
    pub const fn id(name: &'static str, help: &'static str) -> ParamSpec {
        ParamSpec {
            name,
            kind: ParamKind::Id,
            required: true,
            default: None,
            help,
        }
    }

    /// A list of identifiers.
    pub const fn id_list(name: &'static str, required: bool, help: &'static str) -> ParamSpec {
        ParamSpec {
            name,
            kind: ParamKind::IdList,
            required,
            default: None,
            help,
        }
    }
}

/// A parsed parameter value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// An identifier or a choice.
    Text(String),
    /// A sorted, de-duplicated list of identifiers.
    List(Vec<String>),
}

impl ParamValue {
    /// The canonical text used in identity keys.
    pub fn canonical(&self) -> String {
        match self {
            ParamValue::Bool(b) => b.to_string(),
            ParamValue::Int(i) => i.to_string(),
            ParamValue::Text(s) => s.clone(),
            ParamValue::List(l) => l.join(","),
        }
    }
}

/// Validated, canonical parameters of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Params(BTreeMap<String, ParamValue>);

/// Where raw parameters come from.
#[derive(Clone, Copy, Debug)]
pub enum RawParams<'a> {
    /// A JSON object (HTTP API).
    Json(&'a serde_json::Value),
    /// `KEY=VALUE` pairs (command line).
    Pairs(&'a [(String, String)]),
}

const MAX_LIST: usize = 10_000;

impl Params {
    /// No parameters.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses raw parameters against `specs`. Errors name `params.<name>`.
    pub fn parse(specs: &[ParamSpec], raw: RawParams<'_>) -> Result<Params, FieldError> {
        let mut given: BTreeMap<String, RawValue<'_>> = BTreeMap::new();
        match raw {
            RawParams::Json(serde_json::Value::Null) => {}
            RawParams::Json(serde_json::Value::Object(obj)) => {
                for (k, v) in obj {
                    given.insert(k.clone(), RawValue::Json(v));
                }
            }
            RawParams::Json(_) => {
                return Err(FieldError::new("params", "must be a JSON object"));
            }
            RawParams::Pairs(pairs) => {
                for (k, v) in pairs {
                    if given.insert(k.clone(), RawValue::Text(v)).is_some() {
                        return Err(FieldError::new(format!("params.{k}"), "given more than once"));
                    }
                }
            }
        }
        let mut out = BTreeMap::new();
        for name in given.keys() {
            if !specs.iter().any(|s| s.name == name) {
                let allowed: Vec<_> = specs.iter().map(|s| s.name).collect();
                let rule = if allowed.is_empty() {
                    "unknown parameter; this operation takes no parameters".to_owned()
                } else {
                    format!("unknown parameter; allowed: {}", allowed.join(", "))
                };
                return Err(FieldError::new(format!("params.{name}"), rule));
            }
        }
        for spec in specs {
            let field = format!("params.{}", spec.name);
            let value = match given.get(spec.name) {
                Some(RawValue::Json(serde_json::Value::Null)) | None => match spec.default {
                    Some(d) => Some(parse_value(&field, spec.kind, RawValue::Text(d))?),
                    None if spec.required => {
                        return Err(FieldError::new(field, "is required"));
                    }
                    None => None,
                },
                Some(raw) => Some(parse_value(&field, spec.kind, *raw)?),
            };
            if let Some(v) = value {
                out.insert(spec.name.to_owned(), v);
            }
        }
        Ok(Params(out))
    }

    /// Rebuilds parameters read back from storage (validated when written).
    pub fn from_stored(value: &serde_json::Value) -> Params {
        let mut out = BTreeMap::new();
        if let Some(obj) = value.as_object() {
            for (k, v) in obj {
                let pv = match v {
                    serde_json::Value::Bool(b) => ParamValue::Bool(*b),
                    serde_json::Value::Number(n) => match n.as_i64() {
                        Some(i) => ParamValue::Int(i),
                        None => continue,
                    },
                    serde_json::Value::String(s) => ParamValue::Text(s.clone()),
                    serde_json::Value::Array(a) => {
                        ParamValue::List(a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                    }
                    _ => continue,
                };
                out.insert(k.clone(), pv);
            }
        }
        Params(out)
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.0.get(name)
    }

    /// The integer value of `name`.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.0.get(name) {
            Some(ParamValue::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// The text value of `name`.
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.0.get(name) {
            Some(ParamValue::Text(s)) => Some(s),
            _ => None,
        }
    }

    /// The boolean value of `name`.
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.0.get(name) {
            Some(ParamValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// The list value of `name`.
    pub fn list(&self, name: &str) -> Option<&[String]> {
        match self.0.get(name) {
            Some(ParamValue::List(l)) => Some(l),
            _ => None,
        }
    }

    /// Iterates in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// As a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Clone, Copy, Debug)]
enum RawValue<'a> {
    Json(&'a serde_json::Value),
    Text(&'a str),
}

impl<'a> RawValue<'a> {
    /// The value when it is text (a command-line value or a JSON string).
    fn text(self) -> Option<&'a str> {
        match self {
            RawValue::Text(s) => Some(s),
            RawValue::Json(serde_json::Value::String(s)) => Some(s),
            RawValue::Json(_) => None,
        }
    }
}

fn valid_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

const ID_RULE: &str = "must be an identifier of 1-128 characters (letters, digits, '.', '_', ':', '-')";

fn parse_value(field: &str, kind: ParamKind, raw: RawValue<'_>) -> Result<ParamValue, FieldError> {
    let err = |rule: &str| FieldError::new(field, rule);
    match kind {
        ParamKind::Id => {
            let s = raw.text().ok_or_else(|| err("must be a string identifier"))?.trim();
            if valid_id(s) {
                Ok(ParamValue::Text(s.to_owned()))
            } else {
                Err(err(ID_RULE))
            }
        }
        ParamKind::IdList => {
            let items: Vec<String> = match (raw, raw.text()) {
                (_, Some(s)) => s
                    .split(',')
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect(),
                (RawValue::Json(serde_json::Value::Array(a)), _) => a
                    .iter()
                    .map(|v| v.as_str().map(|s| s.trim().to_owned()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| err("must be a list of string identifiers"))?,
                _ => {
                    return Err(err("must be a list of identifiers (array or comma-separated)"));
                }
            };
            if items.is_empty() {
                return Err(err("must list at least one identifier"));
            }
            if items.len() > MAX_LIST {
                return Err(err("must list at most 10000 identifiers"));
            }
            if let Some(bad) = items.iter().find(|i| !valid_id(i)) {
                let shown: String = bad.chars().take(40).collect();
                return Err(FieldError::new(field, format!("item {shown:?} {ID_RULE}")));
            }
            let mut items = items;
            items.sort();
            items.dedup();
            Ok(ParamValue::List(items))
        }
        ParamKind::Int { min, max } => {
            let n = match raw {
                RawValue::Text(s) => s.trim().parse::<i64>().ok(),
                RawValue::Json(serde_json::Value::Number(n)) => n.as_i64(),
                RawValue::Json(serde_json::Value::String(s)) => s.trim().parse::<i64>().ok(),
                RawValue::Json(_) => None,
            }
            .ok_or_else(|| err(&format!("must be an integer between {min} and {max}")))?;
            if n < min || n > max {
                return Err(err(&format!("must be between {min} and {max}")));
            }
            Ok(ParamValue::Int(n))
        }
        ParamKind::Bool => {
            let b = match (raw, raw.text()) {
                (RawValue::Json(serde_json::Value::Bool(b)), _) => Some(*b),
                (_, Some(s)) => match s.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => Some(true),
                    "false" | "0" | "no" => Some(false),
                    _ => None,
                },
                _ => None,
            };
            b.map(ParamValue::Bool).ok_or_else(|| err("must be true or false"))
        }
        ParamKind::Choice(words) => {
            let s = raw.text().map_or("", str::trim);
            if words.contains(&s) {
                Ok(ParamValue::Text(s.to_owned()))
            } else {
                Err(err(&format!("must be one of {}", words.join(", "))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SPECS: &[ParamSpec] = &[
        ParamSpec {
            name: "set",
            kind: ParamKind::Id,
            required: true,
            default: None,
            help: "",
        },
        ParamSpec {
            name: "ids",
            kind: ParamKind::IdList,
            required: false,
            default: None,
            help: "",
        },
        ParamSpec {
            name: "n",
            kind: ParamKind::Int { min: 0, max: 10 },
            required: false,
            default: Some("3"),
            help: "",
        },
        ParamSpec {
            name: "dry",
            kind: ParamKind::Bool,
            required: false,
            default: None,
            help: "",
        },
        ParamSpec {
            name: "fmt",
            kind: ParamKind::Choice(&["json", "csv"]),
            required: false,
            default: None,
            help: "",
        },
    ];

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn json_and_pairs_parse_to_the_same_canonical_params() {
        let a = Params::parse(
            SPECS,
            RawParams::Json(&json!({"set": "s1", "ids": ["b", "a", "b"], "dry": true})),
        )
        .unwrap();
        let b = Params::parse(
            SPECS,
            RawParams::Pairs(&pairs(&[("set", "s1"), ("ids", "a, b"), ("dry", "yes")])),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.list("ids").unwrap(), ["a", "b"]);
        assert_eq!(a.int("n"), Some(3), "default filled in");
        assert_eq!(
            a.to_json(),
            json!({"set": "s1", "ids": ["a", "b"], "n": 3, "dry": true})
        );
        assert_eq!(Params::from_stored(&a.to_json()), a);
    }

    #[test]
    fn errors_name_the_parameter_and_rule() {
        let cases: Vec<(serde_json::Value, &str, &str)> = vec![
            (json!({}), "params.set", "required"),
            (
                json!({"set": "s", "bogus": 1}),
                "params.bogus",
                "unknown parameter; allowed: set, ids, n, dry, fmt",
            ),
            (json!({"set": "has space"}), "params.set", "identifier"),
            (json!({"set": 5}), "params.set", "string"),
            (json!({"set": "s", "n": 11}), "params.n", "between 0 and 10"),
            (json!({"set": "s", "n": "x"}), "params.n", "integer"),
            (json!({"set": "s", "dry": "maybe"}), "params.dry", "true or false"),
            (json!({"set": "s", "fmt": "xml"}), "params.fmt", "json, csv"),
            (json!({"set": "s", "ids": []}), "params.ids", "at least one"),
            (json!({"set": "s", "ids": ["ok", "no way"]}), "params.ids", "\"no way\""),
            (json!([1]), "params", "JSON object"),
        ];
        for (raw, field, rule) in cases {
            let e = Params::parse(SPECS, RawParams::Json(&raw)).unwrap_err();
            assert_eq!(e.field, field, "{raw}");
            assert!(e.rule.contains(rule), "{raw}: {}", e.rule);
        }
        let e = Params::parse(SPECS, RawParams::Pairs(&pairs(&[("set", "a"), ("set", "b")]))).unwrap_err();
        assert_eq!(e.field, "params.set");
    }

    #[test]
    fn null_means_absent() {
        let p = Params::parse(SPECS, RawParams::Json(&json!({"set": "s", "dry": null}))).unwrap();
        assert_eq!(p.bool("dry"), None);
        assert!(
            Params::parse(&[], RawParams::Json(&serde_json::Value::Null))
                .unwrap()
                .is_empty()
        );
        let e = Params::parse(&[], RawParams::Json(&json!({"x": 1}))).unwrap_err();
        assert!(e.rule.contains("takes no parameters"));
    }
}
