//! Writes, as strict as Graph: a body holding a read-only property, a
//! create without (or with a foreign) `@odata.type`, a compliance create
//! without its scheduled actions, a settings catalog PUT with a null
//! `roleScopeTagIds`, navigation data written inline where Graph wants an
//! action — each is a 400 in Graph's error shape, and nothing changes.
//! Every write either applies whole or not at all.

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use tenantatlas_providers::clean::read_only_paths;
use tenantatlas_providers::object::ObjectType;

use crate::graph::{Body, Ctx, Kind, shape, with_context};
use crate::reply::{Reply, new_guid, now_timestamp};
use crate::route::Action;
use crate::state::Shared;

type Outcome = Result<Reply, Reply>;

fn done(o: Outcome) -> Reply {
    o.unwrap_or_else(|e| e)
}

/// The request body as a JSON object, or Graph's answer to a bad one.
fn body_object(ctx: &Ctx<'_>) -> Result<Map<String, Value>, Reply> {
    match &ctx.call.body {
        Body::None => Err(Reply::bad_request("Empty Payload. JSON content expected.")),
        Body::Invalid(why) => Err(Reply::bad_request(format!(
            "The request body is not valid JSON: {why}."
        ))),
        Body::NotJson => Err(Reply::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "The request body must be JSON, sent with Content-Type: application/json.",
        )),
        Body::Json(Value::Object(m)) => Ok(m.clone()),
        Body::Json(_) => Err(Reply::bad_request("The request body must be a JSON object.")),
    }
}

/// 400 naming every read-only property of `body`.
fn check_read_only(ty: ObjectType, body: &Value) -> Result<(), Reply> {
    let paths = read_only_paths(ty, body);
    match paths.first() {
        None => Ok(()),
        Some(first) => Err(Reply::bad_request(format!(
            "The property '{first}' is read-only and cannot be set in a request body (read-only properties sent: {}).",
            paths.join(", ")
        ))),
    }
}

/// Navigation properties Graph does not take inline in this write.
fn check_inline(ty: ObjectType, body: &Map<String, Value>, allowed: &[&str]) -> Result<(), Reply> {
    for k in [
        "assignments",
        "settings",
        "scheduledActionsForRule",
        "definitionValues",
        "apps",
    ] {
        if body.contains_key(k) && !allowed.contains(&k) {
            let how = match (ty, k) {
                (_, "assignments") => "use the assign action",
                (ObjectType::CompliancePolicy, _) => "use the scheduleActionsForRules action",
                (ObjectType::AdministrativeTemplate, _) => "use updateDefinitionValues or POST definitionValues",
                (ObjectType::AppProtectionPolicy, _) => "use the targetApps action",
                _ => "it is not a property of this type",
            };
            return Err(Reply::bad_request(format!(
                "The navigation property '{k}' cannot be written in this request: {how}."
            )));
        }
    }
    Ok(())
}

/// `roleScopeTagIds` must not be null (Graph's 400 on a settings catalog
/// PUT) and, when present, is a list of strings.
fn check_role_scope_tags(body: &Map<String, Value>) -> Result<(), Reply> {
    match body.get("roleScopeTagIds") {
        None => Ok(()),
        Some(Value::Null) => Err(Reply::bad_request(
            "The property 'roleScopeTagIds' cannot be null: send [\"0\"] for the default scope tag.",
        )),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err(Reply::bad_request(
            "The property 'roleScopeTagIds' must be a list of strings.",
        )),
    }
}

/// A script's content is `Edm.Binary`: base64.
fn check_script_content(body: &Map<String, Value>) -> Result<(), Reply> {
    match body.get("scriptContent") {
        None => Ok(()),
        Some(Value::String(s)) if STANDARD.decode(s.trim()).is_ok() => Ok(()),
        Some(_) => Err(Reply::bad_request(
            "The property 'scriptContent' must be base64-encoded (Edm.Binary).",
        )),
    }
}

/// An array property, absent meaning empty.
fn array_of<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], Reply> {
    match body.get(key) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(Reply::bad_request(format!("The property '{key}' must be a list."))),
    }
}

/// Refuses parameters an action does not take.
fn only_keys(body: &Map<String, Value>, action: &str, allowed: &[&str]) -> Result<(), Reply> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(Reply::bad_request(format!(
            "The parameter '{k}' in the request payload is not a valid parameter for the operation '{action}' (it takes {}).",
            allowed.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(", ")
        ))),
        None => Ok(()),
    }
}

/// A new entity: `@odata.type` and a new `id` first, then `fields` (except
/// their `@odata.type` and `skip`).
fn entity(odata_type: &str, fields: &Map<String, Value>, skip: &[&str]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("@odata.type".to_owned(), json!(odata_type));
    m.insert("id".to_owned(), json!(new_guid()));
    for (k, v) in fields {
        if k != "@odata.type" && !skip.contains(&k.as_str()) {
            m.insert(k.clone(), v.clone());
        }
    }
    m
}

fn odata_type_or<'a>(m: &'a Map<String, Value>, default: &'a str) -> &'a str {
    m.get("@odata.type").and_then(Value::as_str).unwrap_or(default)
}

/// The `version` a new object of the type starts at (Graph keeps an
/// integer on device configurations and compliance, a string on app
/// protection, none elsewhere).
fn initial_version(ty: ObjectType) -> Option<Value> {
    match ty {
        ObjectType::DeviceConfiguration | ObjectType::CompliancePolicy => Some(json!(1)),
        ObjectType::AppProtectionPolicy => Some(json!("1")),
        _ => None,
    }
}

fn bump_version(e: &mut Map<String, Value>) {
    let next = match e.get("version") {
        Some(Value::Number(n)) => n.as_i64().map(|n| json!(n.saturating_add(1))),
        Some(Value::String(s)) => s.parse::<i64>().ok().map(|n| json!(n.saturating_add(1).to_string())),
        _ => None,
    };
    if let Some(v) = next {
        e.insert("version".to_owned(), v);
    }
}

/// Settings numbered as Graph numbers them (`"0"`, `"1"`, …).
fn number_settings(settings: &[Value]) -> Result<Vec<Value>, Reply> {
    settings
        .iter()
        .enumerate()
        .map(|(i, s)| match s {
            Value::Object(m) => {
                let mut out = Map::new();
                out.insert("id".to_owned(), json!(i.to_string()));
                out.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
                Ok(Value::Object(out))
            }
            _ => Err(Reply::bad_request(format!("settings[{i}] must be an object."))),
        })
        .collect()
}

/// Scheduled actions with new ids (`field` names the list in messages).
fn build_scheduled_actions(rules: &[Value], field: &str) -> Result<Vec<Value>, Reply> {
    let mut out = Vec::with_capacity(rules.len());
    for (i, r) in rules.iter().enumerate() {
        let Value::Object(m) = r else {
            return Err(Reply::bad_request(format!("{field}[{i}] must be an object.")));
        };
        let mut rule = entity(
            odata_type_or(m, "#microsoft.graph.deviceComplianceScheduledActionForRule"),
            m,
            &["scheduledActionConfigurations"],
        );
        let mut configs = Vec::new();
        for (j, c) in array_of(m, "scheduledActionConfigurations")?.iter().enumerate() {
            let Value::Object(cm) = c else {
                return Err(Reply::bad_request(format!(
                    "{field}[{i}].scheduledActionConfigurations[{j}] must be an object."
                )));
            };
            configs.push(Value::Object(entity(
                odata_type_or(cm, "#microsoft.graph.deviceComplianceActionItem"),
                cm,
                &[],
            )));
        }
        rule.insert("scheduledActionConfigurations".to_owned(), Value::Array(configs));
        out.push(Value::Object(rule));
    }
    Ok(out)
}

/// `POST {coll}`.
pub(crate) fn create(ctx: &Ctx<'_>) -> Reply {
    done(create_inner(ctx))
}

fn create_inner(ctx: &Ctx<'_>) -> Outcome {
    let route = ctx.route;
    let ty = route.ty;
    let d = ty.descriptor();
    if ty == ObjectType::AppProtectionPolicy && route.platform.is_none() {
        return Err(Reply::bad_request(
            "Create an app protection policy in its platform's collection (deviceAppManagement/iosManagedAppProtections, androidManagedAppProtections or windowsManagedAppProtections).",
        ));
    }
    let body = body_object(ctx)?;
    check_read_only(ty, &Value::Object(body.clone()))?;
    let Some(odata_type) = body.get("@odata.type").and_then(Value::as_str) else {
        return Err(Reply::bad_request(format!(
            "The request body has no '@odata.type': Graph needs it to know which kind of {} to create.",
            d.name
        )));
    };
    if !d.knows(odata_type) || route.platform.is_some_and(|p| p != odata_type) {
        return Err(Reply::bad_request(format!(
            "The @odata.type '{odata_type}' is not a type the collection {} can hold.",
            route.coll
        )));
    }
    if body
        .get(d.name_property)
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(Reply::bad_request(format!(
            "The property '{}' is required.",
            d.name_property
        )));
    }
    let inline: &[&str] = match ty {
        ObjectType::SettingsCatalogPolicy => &["settings"],
        ObjectType::CompliancePolicy => &["scheduledActionsForRule"],
        _ => &[],
    };
    check_inline(ty, &body, inline)?;
    check_script_content(&body)?;
    let now = now_timestamp();
    let mut e = entity(odata_type, &body, &[]);
    match ty {
        ObjectType::SettingsCatalogPolicy => {
            check_role_scope_tags(&body)?;
            let settings = number_settings(array_of(&body, "settings")?)?;
            e.insert("settingCount".to_owned(), json!(settings.len()));
            e.insert("settings".to_owned(), Value::Array(settings));
            e.insert("isAssigned".to_owned(), json!(false));
        }
        ObjectType::CompliancePolicy => {
            let Some(Value::Array(rules)) = body.get("scheduledActionsForRule") else {
                return Err(Reply::bad_request(
                    "The property 'scheduledActionsForRule' is required to create a compliance policy (a list with at least the block action).",
                ));
            };
            let rules = build_scheduled_actions(rules, "scheduledActionsForRule")?;
            e.insert("scheduledActionsForRule".to_owned(), Value::Array(rules));
        }
        ObjectType::AdministrativeTemplate => {
            e.insert("definitionValues".to_owned(), json!([]));
        }
        ObjectType::AppProtectionPolicy => {
            e.insert("apps".to_owned(), json!([]));
            e.insert("isAssigned".to_owned(), json!(false));
        }
        _ => {}
    }
    if !e.contains_key("roleScopeTagIds") {
        e.insert("roleScopeTagIds".to_owned(), json!(["0"]));
    }
    e.insert("createdDateTime".to_owned(), json!(now));
    e.insert("lastModifiedDateTime".to_owned(), json!(now));
    if let Some(v) = initial_version(ty) {
        e.insert("version".to_owned(), v);
    }
    if d.assign_wrapper.is_some() {
        e.insert("assignments".to_owned(), json!([]));
    }
    let e = Value::Object(e);
    let view = ctx.item_view(&e, &[])?;
    ctx.tenant.write().coll_mut(ty).push(e);
    let context = ctx.context(&format!("{}/$entity", route.coll));
    Ok(Reply::json(StatusCode::CREATED, with_context(context, view)))
}

/// The `@odata.type` of a write body must be the object's own.
fn check_same_type(body: &Map<String, Value>, existing: &Value) -> Result<(), Reply> {
    let have = existing.get("@odata.type").and_then(Value::as_str).unwrap_or_default();
    match body.get("@odata.type") {
        None => Ok(()),
        Some(Value::String(t)) if t == have => Ok(()),
        Some(t) => Err(Reply::bad_request(format!(
            "The @odata.type of an object cannot be changed (it is '{have}', the request sent {t})."
        ))),
    }
}

/// `PATCH {coll}/{id}`: changes the properties sent.
pub(crate) fn patch(ctx: &Ctx<'_>, id: &str) -> Reply {
    done(patch_inner(ctx, id))
}

fn patch_inner(ctx: &Ctx<'_>, id: &str) -> Outcome {
    let ty = ctx.route.ty;
    let d = ty.descriptor();
    let body = body_object(ctx)?;
    check_read_only(ty, &Value::Object(body.clone()))?;
    check_inline(ty, &body, &[])?;
    check_script_content(&body)?;
    if let Some(n) = body.get(d.name_property)
        && n.as_str().is_none_or(str::is_empty)
    {
        return Err(Reply::bad_request(format!(
            "The property '{}' must be a non-empty string.",
            d.name_property
        )));
    }
    let mut store = ctx.tenant.write();
    let Some(Value::Object(e)) = store.find_mut(ctx.route, id) else {
        return Err(ctx.not_found(id));
    };
    check_same_type(&body, &Value::Object(e.clone()))?;
    for (k, v) in body {
        if k != "@odata.type" {
            e.insert(k, v);
        }
    }
    e.insert("lastModifiedDateTime".to_owned(), json!(now_timestamp()));
    bump_version(e);
    Ok(Reply::no_content())
}

/// `PUT {coll}/{id}` (settings catalog): replaces the policy.
pub(crate) fn put(ctx: &Ctx<'_>, id: &str) -> Reply {
    done(put_inner(ctx, id))
}

fn put_inner(ctx: &Ctx<'_>, id: &str) -> Outcome {
    let ty = ctx.route.ty;
    let d = ty.descriptor();
    let body = body_object(ctx)?;
    check_read_only(ty, &Value::Object(body.clone()))?;
    check_role_scope_tags(&body)?;
    check_inline(ty, &body, &["settings"])?;
    if body
        .get(d.name_property)
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(Reply::bad_request(format!(
            "The property '{}' is required.",
            d.name_property
        )));
    }
    let settings = number_settings(array_of(&body, "settings")?)?;
    let mut store = ctx.tenant.write();
    let Some(existing) = store.find_mut(ctx.route, id) else {
        return Err(ctx.not_found(id));
    };
    check_same_type(&body, existing)?;
    let kept = |k: &str| existing.get(k).cloned();
    let mut e = Map::new();
    for k in ["@odata.type", "id"] {
        if let Some(v) = kept(k) {
            e.insert(k.to_owned(), v);
        }
    }
    for (k, v) in &body {
        if k != "@odata.type" && k != "settings" {
            e.insert(k.clone(), v.clone());
        }
    }
    if !e.contains_key("roleScopeTagIds") {
        e.insert("roleScopeTagIds".to_owned(), json!(["0"]));
    }
    // What Graph manages itself survives the replacement.
    for k in ["createdDateTime", "creationSource", "isAssigned", "assignments"] {
        if let Some(v) = kept(k) {
            e.insert(k.to_owned(), v);
        }
    }
    e.insert("lastModifiedDateTime".to_owned(), json!(now_timestamp()));
    e.insert("settingCount".to_owned(), json!(settings.len()));
    e.insert("settings".to_owned(), Value::Array(settings));
    *existing = Value::Object(e);
    Ok(Reply::no_content())
}

/// `DELETE {coll}/{id}`.
pub(crate) fn delete(ctx: &Ctx<'_>, id: &str) -> Reply {
    let mut store = ctx.tenant.write();
    if store.find(ctx.route, id).is_none() {
        return ctx.not_found(id);
    }
    store.coll_mut(ctx.route.ty).remove(id);
    Reply::no_content()
}

/// `POST {coll}/{id}/{action}`.
pub(crate) fn action(ctx: &Ctx<'_>, id: &str, action: Action) -> Reply {
    done(match action {
        Action::Assign => assign(ctx, id),
        Action::ScheduleActionsForRules => schedule_actions(ctx, id),
        Action::TargetApps => target_apps(ctx, id),
        Action::UpdateDefinitionValues => update_definition_values(ctx, id),
    })
}

/// The `@odata.type` of an assignment of the type.
fn assignment_type(ty: ObjectType) -> &'static str {
    match ty {
        ObjectType::SettingsCatalogPolicy => "#microsoft.graph.deviceManagementConfigurationPolicyAssignment",
        ObjectType::CompliancePolicy => "#microsoft.graph.deviceCompliancePolicyAssignment",
        ObjectType::AdministrativeTemplate => "#microsoft.graph.groupPolicyConfigurationAssignment",
        ObjectType::PowershellScript => "#microsoft.graph.deviceManagementScriptAssignment",
        ObjectType::MobileApp => "#microsoft.graph.mobileAppAssignment",
        ObjectType::AppProtectionPolicy => "#microsoft.graph.targetedManagedAppPolicyAssignment",
        _ => "#microsoft.graph.deviceConfigurationAssignment",
    }
}

const TARGETS: &[&str] = &[
    "#microsoft.graph.groupAssignmentTarget",
    "#microsoft.graph.exclusionGroupAssignmentTarget",
    "#microsoft.graph.allDevicesAssignmentTarget",
    "#microsoft.graph.allLicensedUsersAssignmentTarget",
];

/// Checks one assignment of an `assign` body.
fn check_assignment(ty: ObjectType, wrapper: &str, i: usize, a: &Value) -> Result<(), Reply> {
    let bad = |what: String| Err(Reply::bad_request(format!("{wrapper}[{i}]: {what}")));
    let Some(a) = a.as_object() else {
        return bad("an assignment must be an object.".to_owned());
    };
    let Some(target) = a.get("target").and_then(Value::as_object) else {
        return bad("an assignment needs a 'target' object.".to_owned());
    };
    let t = target.get("@odata.type").and_then(Value::as_str).unwrap_or_default();
    if !TARGETS.contains(&t) {
        return bad(format!(
            "the target's @odata.type '{t}' is not an assignment target (one of {}).",
            TARGETS.join(", ")
        ));
    }
    let group_target = matches!(
        t,
        "#microsoft.graph.groupAssignmentTarget" | "#microsoft.graph.exclusionGroupAssignmentTarget"
    );
    if group_target && target.get("groupId").and_then(Value::as_str).is_none_or(str::is_empty) {
        return bad("a group target needs a 'groupId'.".to_owned());
    }
    if let Some(f) = target.get("deviceAndAppManagementAssignmentFilterType")
        && !matches!(f.as_str(), Some("none" | "include" | "exclude"))
    {
        return bad(format!(
            "deviceAndAppManagementAssignmentFilterType {f} is not one of none, include, exclude."
        ));
    }
    if ty == ObjectType::MobileApp
        && !matches!(
            a.get("intent").and_then(Value::as_str),
            Some("available" | "required" | "uninstall" | "availableWithoutEnrollment")
        )
    {
        return bad(
            "an app assignment needs an 'intent' (available, required, uninstall, availableWithoutEnrollment)."
                .to_owned(),
        );
    }
    Ok(())
}

/// `POST {coll}/{id}/assign`: replaces the whole assignment list.
fn assign(ctx: &Ctx<'_>, id: &str) -> Outcome {
    let ty = ctx.route.ty;
    let Some(wrapper) = ty.descriptor().assign_wrapper else {
        return Err(Reply::segment_not_found("assign"));
    };
    let body = body_object(ctx)?;
    only_keys(&body, "assign", &[wrapper])?;
    let Some(Value::Array(list)) = body.get(wrapper) else {
        return Err(Reply::bad_request(format!(
            "The parameter '{wrapper}' (a list) is missing from the request payload of the operation 'assign'."
        )));
    };
    check_read_only(ty, &Value::Object(body.clone()))?;
    let mut stored = Vec::with_capacity(list.len());
    for (i, a) in list.iter().enumerate() {
        check_assignment(ty, wrapper, i, a)?;
        if let Value::Object(m) = a {
            stored.push(Value::Object(entity(odata_type_or(m, assignment_type(ty)), m, &[])));
        }
    }
    let mut store = ctx.tenant.write();
    let Some(Value::Object(e)) = store.find_mut(ctx.route, id) else {
        return Err(ctx.not_found(id));
    };
    if e.contains_key("isAssigned") {
        e.insert("isAssigned".to_owned(), json!(!stored.is_empty()));
    }
    e.insert("assignments".to_owned(), Value::Array(stored.clone()));
    drop(store);
    // Graph answers the configuration types' assign with the new list and
    // the others' with no content.
    Ok(match ty {
        ObjectType::PowershellScript | ObjectType::MobileApp | ObjectType::AppProtectionPolicy => Reply::no_content(),
        _ => Reply::json(
            StatusCode::OK,
            json!({
                "@odata.context": ctx.context(&format!("Collection({})", assignment_type(ty).trim_start_matches('#'))),
                "value": stored,
            }),
        ),
    })
}

/// `POST deviceCompliancePolicies/{id}/scheduleActionsForRules`: replaces
/// the scheduled actions.
fn schedule_actions(ctx: &Ctx<'_>, id: &str) -> Outcome {
    const KEY: &str = "deviceComplianceScheduledActionForRules";
    let body = body_object(ctx)?;
    only_keys(&body, "scheduleActionsForRules", &[KEY])?;
    let Some(Value::Array(rules)) = body.get(KEY) else {
        return Err(Reply::bad_request(format!(
            "The parameter '{KEY}' (a list) is missing from the request payload of the operation 'scheduleActionsForRules'."
        )));
    };
    check_read_only(ctx.route.ty, &Value::Object(body.clone()))?;
    let rules = build_scheduled_actions(rules, KEY)?;
    let mut store = ctx.tenant.write();
    let Some(Value::Object(e)) = store.find_mut(ctx.route, id) else {
        return Err(ctx.not_found(id));
    };
    e.insert("scheduledActionsForRule".to_owned(), Value::Array(rules));
    Ok(Reply::no_content())
}

/// `POST {platform coll}/{id}/targetApps`: replaces the targeted apps.
fn target_apps(ctx: &Ctx<'_>, id: &str) -> Outcome {
    let body = body_object(ctx)?;
    only_keys(&body, "targetApps", &["apps", "appGroupType"])?;
    let Some(Value::Array(apps)) = body.get("apps") else {
        return Err(Reply::bad_request(
            "The parameter 'apps' (a list) is missing from the request payload of the operation 'targetApps'.",
        ));
    };
    if let Some(g) = body.get("appGroupType")
        && !g.is_string()
    {
        return Err(Reply::bad_request("The parameter 'appGroupType' must be a string."));
    }
    check_read_only(ctx.route.ty, &Value::Object(body.clone()))?;
    let suffix = match ctx.route.platform {
        Some(p) if p.contains("ios") => "ios",
        Some(p) if p.contains("android") => "android",
        _ => "windows",
    };
    let mut stored = Vec::with_capacity(apps.len());
    for (i, a) in apps.iter().enumerate() {
        let Some(m) = a.as_object() else {
            return Err(Reply::bad_request(format!("apps[{i}] must be an object.")));
        };
        let Some(ident) = m.get("mobileAppIdentifier").and_then(Value::as_object) else {
            return Err(Reply::bad_request(format!(
                "apps[{i}] needs a 'mobileAppIdentifier' object."
            )));
        };
        let mut app = entity(odata_type_or(m, "#microsoft.graph.managedMobileApp"), m, &[]);
        // Graph names a targeted app after its identifier.
        let named = ["bundleId", "packageId", "windowsAppId"]
            .iter()
            .find_map(|k| ident.get(*k).and_then(Value::as_str));
        if let Some(n) = named {
            app.insert("id".to_owned(), json!(format!("{n}.{suffix}")));
        }
        stored.push(Value::Object(app));
    }
    let mut store = ctx.tenant.write();
    let Some(Value::Object(e)) = store.find_mut(ctx.route, id) else {
        return Err(ctx.not_found(id));
    };
    e.insert("apps".to_owned(), Value::Array(stored));
    if let Some(g) = body.get("appGroupType") {
        e.insert("appGroupType".to_owned(), g.clone());
    }
    Ok(Reply::no_content())
}

/// The ids inside `('…')` of a bind URL, in order; or its last path
/// segment when it has none.
fn bind_ids(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = url;
    while let Some(start) = rest.find("('") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("')") else {
            break;
        };
        out.push(after[..end].to_owned());
        rest = &after[end + 2..];
    }
    if out.is_empty()
        && let Some(last) = url.trim_end_matches('/').rsplit('/').next().filter(|s| !s.is_empty())
    {
        out.push(last.to_owned());
    }
    out
}

/// A presentation value from a write (`presentation@odata.bind`).
fn build_presentation_value(shared: &Shared, def_id: &str, pv: &Value, at: &str) -> Result<Value, Reply> {
    let bad = |what: String| Err(Reply::bad_request(format!("{at}: {what}")));
    let Some(m) = pv.as_object() else {
        return bad("a presentation value must be an object.".to_owned());
    };
    let Some(t) = m
        .get("@odata.type")
        .and_then(Value::as_str)
        .filter(|t| t.starts_with("#microsoft.graph.groupPolicyPresentationValue"))
    else {
        return bad(
            "a presentation value needs its '@odata.type' (#microsoft.graph.groupPolicyPresentationValue…).".to_owned(),
        );
    };
    let Some(bind) = m.get("presentation@odata.bind").and_then(Value::as_str) else {
        return bad("a presentation value needs 'presentation@odata.bind'.".to_owned());
    };
    let ids = bind_ids(bind);
    if ids.len() >= 2 && ids.first().map(String::as_str) != Some(def_id) {
        return bad(format!(
            "the presentation {bind} belongs to another definition than '{def_id}'."
        ));
    }
    let Some(presentation) = ids.last().and_then(|p| shared.catalog.presentations.get(p)) else {
        return bad(format!("the presentation {bind} does not exist."));
    };
    let now = now_timestamp();
    let mut out = entity(t, m, &["presentation@odata.bind"]);
    out.insert("createdDateTime".to_owned(), json!(now));
    out.insert("lastModifiedDateTime".to_owned(), json!(now));
    out.insert("presentation".to_owned(), presentation.clone());
    Ok(Value::Object(out))
}

/// A definition value from a write (`definition@odata.bind`, `enabled`,
/// `presentationValues`).
fn build_definition_value(shared: &Shared, dv: &Value, at: &str) -> Result<Value, Reply> {
    let bad = |what: String| Err(Reply::bad_request(format!("{at}: {what}")));
    let Some(m) = dv.as_object() else {
        return bad("a definition value must be an object.".to_owned());
    };
    let Some(bind) = m.get("definition@odata.bind").and_then(Value::as_str) else {
        return bad("a definition value needs 'definition@odata.bind' naming its groupPolicyDefinition.".to_owned());
    };
    let Some((def_id, definition)) = bind_ids(bind)
        .last()
        .and_then(|id| shared.catalog.definitions.get(id).map(|d| (id.clone(), d)))
    else {
        return bad(format!("the groupPolicyDefinition {bind} does not exist."));
    };
    if !m.get("enabled").is_some_and(Value::is_boolean) {
        return bad("a definition value needs 'enabled' (true or false).".to_owned());
    }
    let mut pvs = Vec::new();
    let Ok(list) = array_of(m, "presentationValues") else {
        return bad("'presentationValues' must be a list.".to_owned());
    };
    for (i, pv) in list.iter().enumerate() {
        pvs.push(build_presentation_value(
            shared,
            &def_id,
            pv,
            &format!("{at}.presentationValues[{i}]"),
        )?);
    }
    let now = now_timestamp();
    let mut out = entity(
        odata_type_or(m, "#microsoft.graph.groupPolicyDefinitionValue"),
        m,
        &["definition@odata.bind", "presentationValues"],
    );
    if !out.contains_key("configurationType") {
        out.insert("configurationType".to_owned(), json!("policy"));
    }
    out.insert("createdDateTime".to_owned(), json!(now));
    out.insert("lastModifiedDateTime".to_owned(), json!(now));
    out.insert("definition".to_owned(), definition.clone());
    out.insert("presentationValues".to_owned(), Value::Array(pvs));
    Ok(Value::Object(out))
}

fn definition_id(dv: &Value) -> Option<&str> {
    dv.get("definition").and_then(|d| d.get("id")).and_then(Value::as_str)
}

fn id_of(v: &Value) -> Option<&str> {
    v.get("id").and_then(Value::as_str)
}

/// Refuses a second value for a definition the policy already sets.
fn check_unique_definition(dvs: &[Value], new: &Value, at: &str) -> Result<(), Reply> {
    let def = definition_id(new);
    if def.is_some() && dvs.iter().any(|d| definition_id(d) == def) {
        return Err(Reply::bad_request(format!(
            "{at}: the policy already has a value for the definition '{}'.",
            def.unwrap_or_default()
        )));
    }
    Ok(())
}

/// Applies one `updated` entry to a definition value.
fn merge_definition_value(shared: &Shared, dv: &mut Value, u: &Map<String, Value>, at: &str) -> Result<(), Reply> {
    let def_id = definition_id(dv).unwrap_or_default().to_owned();
    let now = now_timestamp();
    let Value::Object(target) = dv else {
        return Err(Reply::bad_request(format!("{at}: the stored value is not an object.")));
    };
    for (k, v) in u {
        match k.as_str() {
            "id" | "@odata.type" => {}
            "definition@odata.bind" => {
                if bind_ids(v.as_str().unwrap_or_default()).last().map(String::as_str) != Some(def_id.as_str()) {
                    return Err(Reply::bad_request(format!(
                        "{at}: the definition of a definition value cannot be changed."
                    )));
                }
            }
            "presentationValues" => {
                let Value::Array(list) = v else {
                    return Err(Reply::bad_request(format!("{at}.presentationValues must be a list.")));
                };
                let mut pvs = target
                    .get("presentationValues")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for (i, pv) in list.iter().enumerate() {
                    let here = format!("{at}.presentationValues[{i}]");
                    match pv.get("id").and_then(Value::as_str) {
                        Some(pid) => {
                            let Some(Value::Object(existing)) = pvs.iter_mut().find(|p| id_of(p) == Some(pid)) else {
                                return Err(Reply::bad_request(format!(
                                    "{here}: no presentation value with id '{pid}' in this definition value."
                                )));
                            };
                            for (pk, pval) in pv.as_object().into_iter().flatten() {
                                if !matches!(pk.as_str(), "id" | "@odata.type" | "presentation@odata.bind") {
                                    existing.insert(pk.clone(), pval.clone());
                                }
                            }
                            existing.insert("lastModifiedDateTime".to_owned(), json!(now));
                        }
                        None => pvs.push(build_presentation_value(shared, &def_id, pv, &here)?),
                    }
                }
                target.insert("presentationValues".to_owned(), Value::Array(pvs));
            }
            _ => {
                target.insert(k.clone(), v.clone());
            }
        }
    }
    target.insert("lastModifiedDateTime".to_owned(), json!(now));
    Ok(())
}

/// `POST groupPolicyConfigurations/{id}/updateDefinitionValues`
/// `{added, updated, deletedIds}`: deletes, then updates, then adds — all
/// or nothing.
fn update_definition_values(ctx: &Ctx<'_>, id: &str) -> Outcome {
    let body = body_object(ctx)?;
    only_keys(&body, "updateDefinitionValues", &["added", "updated", "deletedIds"])?;
    // An `updated` entry (and its presentation values) is named by its id:
    // the one place a write carries `id`.
    let mut probe = body.clone();
    if let Some(Value::Array(us)) = probe.get_mut("updated") {
        for u in us.iter_mut().filter_map(Value::as_object_mut) {
            u.remove("id");
            if let Some(Value::Array(pvs)) = u.get_mut("presentationValues") {
                for pv in pvs.iter_mut().filter_map(Value::as_object_mut) {
                    pv.remove("id");
                }
            }
        }
    }
    check_read_only(ctx.route.ty, &Value::Object(probe))?;
    let added = array_of(&body, "added")?;
    let updated = array_of(&body, "updated")?;
    let deleted = array_of(&body, "deletedIds")?;
    let mut store = ctx.tenant.write();
    let Some(Value::Object(policy)) = store.find_mut(ctx.route, id) else {
        return Err(ctx.not_found(id));
    };
    let mut dvs = policy
        .get("definitionValues")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, d) in deleted.iter().enumerate() {
        let Some(pos) = d.as_str().and_then(|d| dvs.iter().position(|v| id_of(v) == Some(d))) else {
            return Err(Reply::bad_request(format!(
                "deletedIds[{i}]: no definition value {d} in this policy."
            )));
        };
        dvs.remove(pos);
    }
    for (i, u) in updated.iter().enumerate() {
        let at = format!("updated[{i}]");
        let Some(um) = u.as_object() else {
            return Err(Reply::bad_request(format!("{at} must be an object.")));
        };
        let Some(uid) = um.get("id").and_then(Value::as_str) else {
            return Err(Reply::bad_request(format!(
                "{at} needs the 'id' of the definition value."
            )));
        };
        let Some(dv) = dvs.iter_mut().find(|v| id_of(v) == Some(uid)) else {
            return Err(Reply::bad_request(format!(
                "{at}: no definition value {uid} in this policy."
            )));
        };
        merge_definition_value(ctx.shared, dv, um, &at)?;
    }
    for (i, a) in added.iter().enumerate() {
        let at = format!("added[{i}]");
        let dv = build_definition_value(ctx.shared, a, &at)?;
        check_unique_definition(&dvs, &dv, &at)?;
        dvs.push(dv);
    }
    policy.insert("definitionValues".to_owned(), Value::Array(dvs));
    policy.insert("lastModifiedDateTime".to_owned(), json!(now_timestamp()));
    Ok(Reply::no_content())
}

/// `POST groupPolicyConfigurations/{id}/definitionValues`: adds one
/// definition value.
pub(crate) fn add_definition_value(ctx: &Ctx<'_>, id: &str) -> Reply {
    done(add_definition_value_inner(ctx, id))
}

fn add_definition_value_inner(ctx: &Ctx<'_>, id: &str) -> Outcome {
    let body = Value::Object(body_object(ctx)?);
    check_read_only(ctx.route.ty, &body)?;
    let dv = build_definition_value(ctx.shared, &body, "definitionValue")?;
    let view = shape(&dv, Kind::DefinitionValue, &[])?;
    let mut store = ctx.tenant.write();
    let Some(Value::Object(policy)) = store.find_mut(ctx.route, id) else {
        return Err(ctx.not_found(id));
    };
    let dvs = policy.entry("definitionValues").or_insert_with(|| json!([]));
    if !dvs.is_array() {
        *dvs = json!([]);
    }
    if let Value::Array(list) = dvs {
        check_unique_definition(list, &dv, "definitionValue")?;
        list.push(dv);
    }
    policy.insert("lastModifiedDateTime".to_owned(), json!(now_timestamp()));
    drop(store);
    let context = ctx.context(&format!("{}('{id}')/definitionValues/$entity", ctx.route.coll));
    Ok(Reply::json(StatusCode::CREATED, with_context(context, view)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_ids_read_both_url_forms() {
        assert_eq!(
            bind_ids(
                "https://graph.microsoft.com/beta/deviceManagement/groupPolicyDefinitions('d1')/presentations('p1')"
            ),
            vec!["d1", "p1"]
        );
        assert_eq!(
            bind_ids("https://graph.microsoft.com/beta/deviceManagement/groupPolicyDefinitions/d2"),
            vec!["d2"]
        );
        assert!(bind_ids("").is_empty());
    }

    #[test]
    fn versions_count_up_in_their_own_type() {
        let mut m = Map::new();
        m.insert("version".into(), json!(3));
        bump_version(&mut m);
        assert_eq!(m["version"], json!(4));
        m.insert("version".into(), json!("7"));
        bump_version(&mut m);
        assert_eq!(m["version"], json!("8"));
    }
}
