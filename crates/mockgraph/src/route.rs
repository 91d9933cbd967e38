//! Which resource a Graph path names: a collection of one of the
//! descriptors' types (or an app protection platform's write collection),
//! an item, a navigation list, or an action. A path Graph would not know
//! for that type is refused by the segment it stumbles on.

use tenantatlas_providers::object::{DESCRIPTORS, ObjectType};

/// A navigation list under an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Nav {
    /// `assignments`.
    Assignments,
    /// `settings` (settings catalog).
    Settings,
    /// `scheduledActionsForRule` (compliance).
    ScheduledActionsForRule,
    /// `definitionValues` (administrative templates).
    DefinitionValues,
    /// `apps` (app protection, through a platform collection).
    Apps,
}

impl Nav {
    /// The property name.
    pub fn name(self) -> &'static str {
        match self {
            Nav::Assignments => "assignments",
            Nav::Settings => "settings",
            Nav::ScheduledActionsForRule => "scheduledActionsForRule",
            Nav::DefinitionValues => "definitionValues",
            Nav::Apps => "apps",
        }
    }
}

/// An action (`POST {coll}/{id}/ACTION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// `assign`: replaces the assignment list.
    Assign,
    /// `scheduleActionsForRules` (compliance).
    ScheduleActionsForRules,
    /// `targetApps` (app protection).
    TargetApps,
    /// `updateDefinitionValues` (administrative templates).
    UpdateDefinitionValues,
}

/// What is addressed below the collection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Rest {
    /// The collection itself.
    Collection,
    /// `{id}`.
    Item(String),
    /// `{id}/{nav}`.
    Nav(String, Nav),
    /// `{id}/definitionValues/{dv}`.
    DefinitionValue(String, String),
    /// `{id}/definitionValues/{dv}/presentationValues`.
    PresentationValues(String, String),
    /// `{id}/{action}`.
    Action(String, Action),
}

/// A parsed Graph path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    /// The object type.
    pub ty: ObjectType,
    /// The collection path as Graph spells it (`deviceManagement/…`).
    pub coll: &'static str,
    /// For an app protection platform collection, the `@odata.type` its
    /// items have.
    pub platform: Option<&'static str>,
    /// What below it.
    pub rest: Rest,
}

impl Route {
    /// The item addressed, if any.
    pub fn item_id(&self) -> Option<&str> {
        match &self.rest {
            Rest::Collection => None,
            Rest::Item(id)
            | Rest::Nav(id, _)
            | Rest::DefinitionValue(id, _)
            | Rest::PresentationValues(id, _)
            | Rest::Action(id, _) => Some(id),
        }
    }

    /// Whether a GET of it reads a (paged) list.
    pub fn is_list(&self) -> bool {
        matches!(
            self.rest,
            Rest::Collection | Rest::Nav(..) | Rest::PresentationValues(..)
        )
    }

    /// Whether an item of this route is reached through the shared app
    /// protection list (`managedAppPolicies`), whose base type has no
    /// navigation properties.
    fn app_protection_base(&self) -> bool {
        self.ty == ObjectType::AppProtectionPolicy && self.platform.is_none()
    }
}

/// Every collection path the local Graph serves.
fn collections() -> Vec<(&'static str, ObjectType, Option<&'static str>)> {
    let mut out: Vec<(&'static str, ObjectType, Option<&'static str>)> =
        DESCRIPTORS.iter().map(|d| (d.collection, d.ty, None)).collect();
    let ap = ObjectType::AppProtectionPolicy.descriptor();
    for t in ap.odata_types {
        let coll = ap.write_collection(Some(t));
        if coll != ap.collection {
            out.push((coll, ap.ty, Some(*t)));
        }
    }
    out
}

/// Parses a decoded path relative to `/beta/` (no leading slash). The error
/// is the segment Graph would not know.
pub(crate) fn parse(path: &str) -> Result<Route, String> {
    let segs: Vec<&str> = path.split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(path.to_owned());
    }
    let mut found = None;
    for (coll, ty, platform) in collections() {
        let n = coll.split('/').count();
        if segs.len() >= n && segs[..n].join("/").eq_ignore_ascii_case(coll) {
            found = Some((coll, ty, platform, n));
            break;
        }
    }
    let Some((coll, ty, platform, n)) = found else {
        let unknown = match segs.first() {
            Some(s) if s.eq_ignore_ascii_case("deviceManagement") || s.eq_ignore_ascii_case("deviceAppManagement") => {
                segs.get(1).copied().unwrap_or(s)
            }
            Some(s) => s,
            None => path,
        };
        return Err(unknown.to_owned());
    };
    let mut route = Route {
        ty,
        coll,
        platform,
        rest: Rest::Collection,
    };
    let rest = &segs[n..];
    let d = ty.descriptor();
    let has_assignments = d.assign_wrapper.is_some() && !route.app_protection_base();
    route.rest = match rest {
        [] => Rest::Collection,
        [id] => Rest::Item((*id).to_owned()),
        [id, seg] => {
            let s = seg.to_ascii_lowercase();
            let id = (*id).to_owned();
            match s.as_str() {
                "assignments" if has_assignments => Rest::Nav(id, Nav::Assignments),
                "settings" if ty == ObjectType::SettingsCatalogPolicy => Rest::Nav(id, Nav::Settings),
                "scheduledactionsforrule" if ty == ObjectType::CompliancePolicy => {
                    Rest::Nav(id, Nav::ScheduledActionsForRule)
                }
                "definitionvalues" if ty == ObjectType::AdministrativeTemplate => Rest::Nav(id, Nav::DefinitionValues),
                "apps" if ty == ObjectType::AppProtectionPolicy && platform.is_some() => Rest::Nav(id, Nav::Apps),
                "assign" if has_assignments => Rest::Action(id, Action::Assign),
                "scheduleactionsforrules" if ty == ObjectType::CompliancePolicy => {
                    Rest::Action(id, Action::ScheduleActionsForRules)
                }
                "targetapps" if ty == ObjectType::AppProtectionPolicy && platform.is_some() => {
                    Rest::Action(id, Action::TargetApps)
                }
                "updatedefinitionvalues" if ty == ObjectType::AdministrativeTemplate => {
                    Rest::Action(id, Action::UpdateDefinitionValues)
                }
                _ => return Err((*seg).to_owned()),
            }
        }
        [id, dvs, dv] if ty == ObjectType::AdministrativeTemplate && dvs.eq_ignore_ascii_case("definitionValues") => {
            Rest::DefinitionValue((*id).to_owned(), (*dv).to_owned())
        }
        [id, dvs, dv, pvs]
            if ty == ObjectType::AdministrativeTemplate
                && dvs.eq_ignore_ascii_case("definitionValues")
                && pvs.eq_ignore_ascii_case("presentationValues") =>
        {
            Rest::PresentationValues((*id).to_owned(), (*dv).to_owned())
        }
        [_, seg, ..] => return Err((*seg).to_owned()),
    };
    Ok(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_shape_and_names_the_unknown_segment() {
        let r = parse("deviceManagement/configurationPolicies/p1/settings").unwrap();
        assert_eq!(r.ty, ObjectType::SettingsCatalogPolicy);
        assert_eq!(r.rest, Rest::Nav("p1".into(), Nav::Settings));
        let r = parse("devicemanagement/deviceManagementScripts/s1/assign").unwrap();
        assert_eq!(r.rest, Rest::Action("s1".into(), Action::Assign));
        let r = parse("deviceAppManagement/iosManagedAppProtections/a1/apps").unwrap();
        assert_eq!(r.platform, Some("#microsoft.graph.iosManagedAppProtection"));
        assert_eq!(
            parse("deviceAppManagement/managedAppPolicies/a1/apps").unwrap_err(),
            "apps"
        );
        let r = parse("deviceManagement/groupPolicyConfigurations/g/definitionValues/d/presentationValues").unwrap();
        assert_eq!(r.rest, Rest::PresentationValues("g".into(), "d".into()));
        assert_eq!(parse("groups").unwrap().ty, ObjectType::Group);
        assert_eq!(parse("groups/g1/assign").unwrap_err(), "assign");
        assert_eq!(parse("deviceManagement/nothing").unwrap_err(), "nothing");
        assert_eq!(parse("me").unwrap_err(), "me");
        assert_eq!(
            parse("deviceManagement/deviceConfigurations/x/settings").unwrap_err(),
            "settings"
        );
        assert!(parse("groups//x").is_err());
    }
}
