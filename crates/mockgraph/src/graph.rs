//! Graph requests: authentication, scripted faults and `--throttle`,
//! permissions, then the read or write itself. A request sent directly and
//! one inside a `$batch` go through the same [`handle`].

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use tenantatlas_providers::fixture::{FaultKind, FaultRule};
use tenantatlas_providers::object::{ObjectType, UpdateVerb, permission_granted};

use crate::log::{Entry, RequestKind};
use crate::odata::{self, Expand, Query, find_expand};
use crate::reply::{Reply, RequestIds};
use crate::route::{self, Nav, Rest, Route};
use crate::state::{Shared, Store, Tenant, in_route};
use crate::writes;

/// A request body.
#[derive(Clone, Debug)]
pub(crate) enum Body {
    /// None sent.
    None,
    /// JSON.
    Json(Value),
    /// Not JSON (the parser's message).
    Invalid(String),
    /// Sent with a content type other than JSON.
    NotJson,
}

/// One Graph request.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    /// `GET`, `POST`, … (upper case).
    pub method: String,
    /// The decoded path relative to `/beta/`, without a leading slash.
    pub path: String,
    /// The decoded query pairs.
    pub query: Vec<(String, String)>,
    /// What the log shows (`/beta/…?…` as requested).
    pub raw: String,
    /// The body.
    pub body: Body,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `client-request-id` header.
    pub client_request_id: Option<String>,
    /// `http://HOST` for the links in answers.
    pub link_base: String,
    /// Whether it is an item of a `$batch`.
    pub in_batch: bool,
}

/// Answers one Graph request and records it.
pub(crate) fn handle(shared: &Shared, call: &Call) -> Reply {
    let ids = RequestIds::new(call.client_request_id.as_deref());
    let (reply, tenant) = match shared.tokens.check(call.authorization.as_deref()) {
        Err(refusal) => (refusal.reply(), None),
        Ok(tid) => match shared.tenant(&tid) {
            Some(t) => (run(shared, t, call), Some(t.id.clone())),
            None => (crate::token::Refusal::Unknown.reply(), None),
        },
    };
    let reply = reply.finish(&ids);
    shared.log.record(Entry {
        kind: RequestKind::Graph,
        method: &call.method,
        path: &call.raw,
        status: reply.status.as_u16(),
        tenant,
        in_batch: call.in_batch,
    });
    reply
}

/// The page size a list answers with.
fn page_size(shared: &Shared, q: &Query) -> usize {
    let size = shared.settings.page_size.max(1);
    q.top.map_or(size, |t| t.min(size))
}

/// The 1-based page a list request reads (for `broken_page` faults).
fn page_number(shared: &Shared, path: &str, q: &Query) -> Option<u32> {
    let offset = match &q.skiptoken {
        Some(t) => odata::read_skiptoken(&shared.nonce, path, t)?,
        None => 0,
    };
    u32::try_from(offset / page_size(shared, q) + 1).ok()
}

fn run(shared: &Shared, tenant: &Tenant, call: &Call) -> Reply {
    let route = route::parse(&call.path);
    let query = odata::parse_query(&call.query);
    let page = match (&route, &query) {
        (Ok(r), Ok(q)) if call.method == "GET" && r.is_list() => page_number(shared, &call.path, q),
        _ => None,
    };
    let throttled = shared.next_throttled();
    if let Some(rule) = tenant.fault(&call.method, &call.path, page) {
        return fault_reply(shared, call, &rule, route.as_ref().ok());
    }
    if throttled {
        return Reply::throttled(Some(&shared.settings.retry_after));
    }
    let route = match route {
        Ok(r) => r,
        Err(segment) => return Reply::segment_not_found(&segment),
    };
    let query = match query {
        Ok(q) => q,
        Err(m) => return Reply::bad_request(m),
    };
    let directory = route.ty == ObjectType::Group;
    let d = route.ty.descriptor();
    let needed = if crate::log::is_write(&call.method) {
        d.write_permission
    } else {
        Some(d.read_permission)
    };
    match needed {
        None => {
            return Reply::error(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            );
        }
        Some(p) if !permission_granted(&tenant.granted, p) => return Reply::forbidden(p, directory),
        Some(_) => {}
    }
    if let Some(id) = route.item_id() {
        let gone =
            tenant.vanished(&format!("{}/{id}", route.coll)) || tenant.vanished(&format!("{}/{id}", d.collection));
        if gone {
            return Reply::not_found(directory, id);
        }
    }
    dispatch(shared, tenant, call, &route, &query)
}

fn fault_reply(shared: &Shared, call: &Call, rule: &FaultRule, route: Option<&Route>) -> Reply {
    match rule.fault {
        FaultKind::Throttle => Reply::throttled(rule.retry_after.as_deref()),
        FaultKind::Unavailable => {
            let r = Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The service is temporarily unavailable. Try again later.",
            );
            match &rule.retry_after {
                Some(s) => r.with_header("Retry-After", s.clone()),
                None => r,
            }
        }
        FaultKind::Forbidden => {
            let needed = route.map(|r| {
                let d = r.ty.descriptor();
                if crate::log::is_write(&call.method) {
                    d.write_permission.unwrap_or(d.read_permission)
                } else {
                    d.read_permission
                }
            });
            let permission = rule
                .permission
                .as_deref()
                .or(needed)
                .unwrap_or(tenantatlas_providers::object::PERM_CONFIG_READ);
            Reply::forbidden(permission, route.is_some_and(|r| r.ty == ObjectType::Group))
        }
        FaultKind::BrokenPage => Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "An internal server error occurred while reading this page.",
        ),
        FaultKind::ExpireToken => {
            shared.tokens.expire(call.authorization.as_deref());
            crate::token::Refusal::Expired.reply()
        }
        // `Faults::hit` never returns a vanish rule; answer as one would.
        FaultKind::Vanish => Reply::not_found(false, &call.path),
    }
}

fn method_not_allowed(call: &Call) -> Reply {
    Reply::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "BadRequest",
        format!(
            "No OData route exists that match template with http verb {} for request /beta/{}.",
            call.method, call.path
        ),
    )
}

fn dispatch(shared: &Shared, tenant: &Tenant, call: &Call, route: &Route, q: &Query) -> Reply {
    let verb = route.ty.descriptor().update;
    let m = call.method.as_str();
    if m != "GET"
        && let Some(opt) = q.has_any_option()
    {
        return Reply::bad_request(format!("Query option '{opt}' is not allowed on a {m} request."));
    }
    let ctx = Ctx {
        shared,
        tenant,
        call,
        route,
        q,
    };
    match (&route.rest, m) {
        (Rest::Collection, "GET") => ctx.list(),
        (Rest::Collection, "POST") => writes::create(&ctx),
        (Rest::Item(id), "GET") => ctx.get(id),
        (Rest::Item(id), "PATCH") if verb == UpdateVerb::Patch => writes::patch(&ctx, id),
        (Rest::Item(id), "PUT") if verb == UpdateVerb::Put => writes::put(&ctx, id),
        (Rest::Item(id), "DELETE") => writes::delete(&ctx, id),
        (Rest::Nav(id, nav), "GET") => ctx.nav_list(id, *nav),
        (Rest::Nav(id, Nav::DefinitionValues), "POST") => writes::add_definition_value(&ctx, id),
        (Rest::DefinitionValue(id, dv), "GET") => ctx.definition_value(id, dv),
        (Rest::PresentationValues(id, dv), "GET") => ctx.presentation_values(id, dv),
        (Rest::Action(id, action), "POST") => writes::action(&ctx, id, *action),
        _ => method_not_allowed(call),
    }
}

/// What a handler works with.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Shared,
    pub tenant: &'a Tenant,
    pub call: &'a Call,
    pub route: &'a Route,
    pub q: &'a Query,
}

/// The kinds of entity whose navigation properties a read leaves out
/// unless `$expand` asks for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An object of a collection (through `managedAppPolicies` for app
    /// protection when `base`: that base type has no navigation).
    Top(ObjectType, bool),
    /// A compliance policy's scheduled action for a rule.
    ScheduledAction,
    /// An administrative template's definition value.
    DefinitionValue,
    /// A definition value's presentation value.
    PresentationValue,
    /// Anything without navigation properties.
    Leaf,
}

/// Navigation properties an object of some type may hold inline in a
/// fixture; a read removes every one not expanded.
const TOP_NAVIGATION: &[&str] = &[
    "assignments",
    "settings",
    "scheduledActionsForRule",
    "definitionValues",
    "apps",
];

impl Kind {
    /// The navigation properties of this kind, with the kind of their items.
    pub fn navigation(self) -> Vec<(&'static str, Kind)> {
        match self {
            Kind::Top(ty, base) => {
                if base {
                    return Vec::new();
                }
                let mut v = Vec::new();
                if ty.descriptor().assign_wrapper.is_some() {
                    v.push(("assignments", Kind::Leaf));
                }
                match ty {
                    ObjectType::SettingsCatalogPolicy => v.push(("settings", Kind::Leaf)),
                    ObjectType::CompliancePolicy => v.push(("scheduledActionsForRule", Kind::ScheduledAction)),
                    ObjectType::AdministrativeTemplate => v.push(("definitionValues", Kind::DefinitionValue)),
                    ObjectType::AppProtectionPolicy => v.push(("apps", Kind::Leaf)),
                    _ => {}
                }
                v
            }
            Kind::ScheduledAction => vec![("scheduledActionConfigurations", Kind::Leaf)],
            Kind::DefinitionValue => vec![
                ("definition", Kind::Leaf),
                ("presentationValues", Kind::PresentationValue),
            ],
            Kind::PresentationValue => vec![("presentation", Kind::Leaf)],
            Kind::Leaf => Vec::new(),
        }
    }

    /// The kind of a route's objects.
    pub fn of(route: &Route) -> Kind {
        Kind::Top(
            route.ty,
            route.ty == ObjectType::AppProtectionPolicy && route.platform.is_none(),
        )
    }
}

/// `v` as a read shows it: navigation properties only where `expand`
/// asks (recursively). An `$expand` of a property the kind does not have
/// is Graph's 400.
pub(crate) fn shape(v: &Value, kind: Kind, expand: &[Expand]) -> Result<Value, Reply> {
    let Value::Object(m) = v else {
        return Ok(v.clone());
    };
    let navs = kind.navigation();
    for e in expand {
        if !navs.iter().any(|(n, _)| *n == e.name) {
            let ty = m
                .get("@odata.type")
                .and_then(Value::as_str)
                .unwrap_or("#microsoft.graph.entity")
                .trim_start_matches('#');
            return Err(Reply::bad_request(format!(
                "Could not find a property named '{}' on type '{ty}'.",
                e.name
            )));
        }
    }
    let mut out = Map::new();
    for (k, child) in m {
        let nav = navs.iter().find(|(n, _)| n == k);
        let strip_anyway = matches!(kind, Kind::Top(..)) && TOP_NAVIGATION.contains(&k.as_str());
        match nav {
            Some((name, child_kind)) => {
                if let Some(e) = find_expand(expand, name) {
                    let shaped = match child {
                        Value::Array(items) => Value::Array(
                            items
                                .iter()
                                .map(|i| shape(i, *child_kind, &e.nested))
                                .collect::<Result<_, _>>()?,
                        ),
                        other => shape(other, *child_kind, &e.nested)?,
                    };
                    out.insert(k.clone(), shaped);
                }
            }
            None if strip_anyway => {}
            None => {
                out.insert(k.clone(), child.clone());
            }
        }
    }
    // An expanded navigation the object holds nothing for reads as empty.
    for e in expand {
        if !out.contains_key(&e.name) && navs.iter().any(|(n, _)| *n == e.name) {
            // Single-valued navigation (a definition, a presentation) reads
            // as null; collections as empty.
            let empty = if matches!(e.name.as_str(), "definition" | "presentation") {
                Value::Null
            } else {
                json!([])
            };
            out.insert(e.name.clone(), empty);
        }
    }
    Ok(Value::Object(out))
}

/// `v` with only the `$select`ed properties (and `id`, `@odata.type`, and
/// whatever was expanded).
fn select(v: Value, q: &Query) -> Value {
    let (Some(props), Value::Object(m)) = (&q.select, &v) else {
        return v;
    };
    let keep = |k: &str| {
        k == "id" || k == "@odata.type" || props.iter().any(|p| p == k) || find_expand(&q.expand, k).is_some()
    };
    Value::Object(
        m.iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// Prefixes an entity with its `@odata.context`.
pub(crate) fn with_context(context: String, v: Value) -> Value {
    let mut out = Map::new();
    out.insert("@odata.context".to_owned(), Value::String(context));
    if let Value::Object(m) = v {
        out.extend(m);
    }
    Value::Object(out)
}

impl Ctx<'_> {
    /// `{base}/beta/$metadata#{what}`.
    pub fn context(&self, what: &str) -> String {
        format!("{}/beta/$metadata#{what}", self.call.link_base)
    }

    fn directory(&self) -> bool {
        self.route.ty == ObjectType::Group
    }

    /// 404 for an item of this route.
    pub fn not_found(&self, id: &str) -> Reply {
        Reply::not_found(self.directory(), id)
    }

    /// One page of a list (`items` is the whole list): only the page's
    /// items are shaped, so a large list costs a page's worth per request.
    fn shaped_list(&self, context: String, items: &[&Value], kind: Kind, list: bool) -> Reply {
        let offset = match &self.q.skiptoken {
            Some(t) => match odata::read_skiptoken(&self.shared.nonce, &self.call.path, t) {
                Some(o) => o,
                None => {
                    return Reply::bad_request(format!(
                        "The $skiptoken value '{t}' is not valid for this request: use the @odata.nextLink of the previous page as it is."
                    ));
                }
            },
            None => 0,
        };
        let size = page_size(self.shared, self.q);
        let next_offset = offset.saturating_add(size);
        let mut value = Vec::with_capacity(size.min(items.len()));
        for v in items.iter().skip(offset).take(size) {
            let mut s = match shape(v, kind, &self.q.expand) {
                Ok(s) => s,
                Err(r) => return r,
            };
            if list && let Value::Object(m) = &mut s {
                // Graph's list leaves out what only a read of the item has.
                m.remove("scriptContent");
            }
            value.push(select(s, self.q));
        }
        let mut body = Map::new();
        body.insert("@odata.context".to_owned(), json!(context));
        if next_offset < items.len() {
            let mut params = self.q.keep.clone();
            params.push((
                "$skiptoken".to_owned(),
                odata::make_skiptoken(&self.shared.nonce, &self.call.path, next_offset),
            ));
            body.insert(
                "@odata.nextLink".to_owned(),
                json!(odata::link(&self.call.link_base, &self.call.path, &params)),
            );
        }
        body.insert("value".to_owned(), Value::Array(value));
        Reply::json(StatusCode::OK, Value::Object(body))
    }

    /// The `$filter` of a collection list: the value its name property
    /// must equal.
    fn name_filter(&self) -> Result<Option<(&'static str, String)>, Reply> {
        let Some(f) = &self.q.filter else {
            return Ok(None);
        };
        let d = self.route.ty.descriptor();
        if self.route.ty == ObjectType::AppProtectionPolicy {
            return Err(Reply::bad_request(format!(
                "$filter is not supported on {} (Graph rejects it there).",
                self.route.coll
            )));
        }
        match odata::parse_eq_filter(f) {
            Some((prop, value)) if prop == d.name_property => Ok(Some((d.name_property, value))),
            _ => {
                let message = format!(
                    "Unsupported query: the local Graph filters {} only by \"{} eq '…'\" (quotes doubled).",
                    self.route.coll, d.name_property
                );
                Err(if self.directory() {
                    Reply::error(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", message)
                } else {
                    Reply::bad_request(message)
                })
            }
        }
    }

    /// `GET {coll}`.
    fn list(&self) -> Reply {
        let filter = match self.name_filter() {
            Ok(f) => f,
            Err(r) => return r,
        };
        let want = filter.map(|(prop, value)| (prop, value.to_lowercase()));
        let store = self.tenant.read();
        let items: Vec<&Value> = store
            .coll(self.route.ty)
            .map(|c| c.items())
            .unwrap_or_default()
            .iter()
            .filter(|v| in_route(self.route, v))
            .filter(|v| {
                want.as_ref().is_none_or(|(prop, want)| {
                    v.get(*prop)
                        .and_then(Value::as_str)
                        .is_some_and(|have| have.to_lowercase() == *want)
                })
            })
            .collect();
        self.shaped_list(self.context(self.route.coll), &items, Kind::of(self.route), true)
    }

    /// The object as an item read shows it.
    pub fn item_view(&self, v: &Value, expand: &[Expand]) -> Result<Value, Reply> {
        shape(v, Kind::of(self.route), expand)
    }

    /// `GET {coll}/{id}`.
    fn get(&self, id: &str) -> Reply {
        if let Some(opt) = self.q.has_list_options() {
            return Reply::bad_request(format!("Query option '{opt}' is not allowed when reading one object."));
        }
        let store = self.tenant.read();
        let Some(v) = store.find(self.route, id) else {
            return self.not_found(id);
        };
        let v = match self.item_view(v, &self.q.expand) {
            Ok(v) => v,
            Err(r) => return r,
        };
        drop(store);
        let context = self.context(&format!("{}/$entity", self.route.coll));
        Reply::json(StatusCode::OK, with_context(context, select(v, self.q)))
    }

    /// `GET {coll}/{id}/{nav}`.
    fn nav_list(&self, id: &str, nav: Nav) -> Reply {
        if self.q.filter.is_some() {
            return Reply::bad_request("$filter is not supported on this navigation list.");
        }
        let store = self.tenant.read();
        let Some(v) = store.find(self.route, id) else {
            return self.not_found(id);
        };
        let items: Vec<&Value> = v
            .get(nav.name())
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let kind = Kind::of(self.route)
            .navigation()
            .into_iter()
            .find(|(n, _)| *n == nav.name())
            .map_or(Kind::Leaf, |(_, k)| k);
        let context = self.context(&format!("{}('{id}')/{}", self.route.coll, nav.name()));
        self.shaped_list(context, &items, kind, false)
    }

    /// The definition value `dv` of policy `id` in `store`.
    fn find_definition_value<'s>(&self, store: &'s Store, id: &str, dv: &str) -> Result<&'s Value, Reply> {
        let v = store.find(self.route, id).ok_or_else(|| self.not_found(id))?;
        v.get("definitionValues")
            .and_then(Value::as_array)
            .and_then(|dvs| dvs.iter().find(|d| d.get("id").and_then(Value::as_str) == Some(dv)))
            .ok_or_else(|| self.not_found(dv))
    }

    /// `GET {coll}/{id}/definitionValues/{dv}`.
    fn definition_value(&self, id: &str, dv: &str) -> Reply {
        if let Some(opt) = self.q.has_list_options() {
            return Reply::bad_request(format!("Query option '{opt}' is not allowed when reading one object."));
        }
        let store = self.tenant.read();
        let v = match self
            .find_definition_value(&store, id, dv)
            .and_then(|v| shape(v, Kind::DefinitionValue, &self.q.expand))
        {
            Ok(v) => v,
            Err(r) => return r,
        };
        let context = self.context(&format!("{}('{id}')/definitionValues/$entity", self.route.coll));
        Reply::json(StatusCode::OK, with_context(context, select(v, self.q)))
    }

    /// `GET {coll}/{id}/definitionValues/{dv}/presentationValues`.
    fn presentation_values(&self, id: &str, dv: &str) -> Reply {
        if self.q.filter.is_some() {
            return Reply::bad_request("$filter is not supported on this navigation list.");
        }
        let store = self.tenant.read();
        let v = match self.find_definition_value(&store, id, dv) {
            Ok(v) => v,
            Err(r) => return r,
        };
        let items: Vec<&Value> = v
            .get("presentationValues")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let context = self.context(&format!(
            "{}('{id}')/definitionValues('{dv}')/presentationValues",
            self.route.coll
        ));
        self.shaped_list(context, &items, Kind::PresentationValue, false)
    }
}
