//! Tenant providers: how TenantAtlas reads and writes a tenant's
//! configuration.
//!
//! One trait, [`TenantProvider`], shaped like Microsoft Graph's beta API;
//! one [`Descriptor`](object::Descriptor) per object type saying what
//! differs; two implementations:
//!
//! - [`directory::DirectoryProvider`] — a tenant as a folder of JSON files
//!   laid out like Graph URLs ([`fixture`]); writes go to an overlay folder
//!   beside it. The embedded default and the demo ([`demo_tenants`]).
//! - [`graph::GraphProvider`] — Microsoft Graph over HTTPS with client
//!   credentials, paging, `$batch`, throttling and a per-tenant limiter.
//!
//! Every failure is a classified [`ProviderError`].

pub mod clean;
pub mod clock;
pub mod directory;
pub mod error;
pub mod fixture;
pub mod graph;
pub mod normalize;
pub mod object;

use async_trait::async_trait;
use include_dir::{Dir, include_dir};
use serde_json::{Value, json};

pub use error::{ProviderError, Result};
pub use object::{Descriptor, ObjectType};

/// One page of a list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    /// The entities, exactly as the provider returned them.
    pub items: Vec<Value>,
    /// The opaque cursor of the next page (`@odata.nextLink`), if any.
    pub next: Option<String>,
}

/// Which kind of provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// JSON files.
    Directory,
    /// Microsoft Graph.
    Graph,
}

impl ProviderKind {
    /// `directory` or `graph`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Directory => "directory",
            ProviderKind::Graph => "graph",
        }
    }
}

/// What a connection may do: the application permissions granted (Graph's
/// `roles` claim; a directory tenant's `tenant.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// The tenant's id as the provider knows it.
    pub tenant_id: String,
    /// Granted application permissions.
    pub granted: Vec<String>,
}

/// A tenant's configuration, read and written the way Microsoft Graph's
/// beta API does.
#[async_trait]
pub trait TenantProvider: Send + Sync {
    /// Which kind.
    fn kind(&self) -> ProviderKind;

    /// Signs in (or opens the folder) and says what the connection may do.
    async fn access(&self) -> Result<Access>;

    /// One page of a type's objects; `cursor` is the previous page's
    /// [`Page::next`]. Entities are as Graph lists them (without the
    /// navigation data a [`get`](Self::get) adds).
    async fn list_page(&self, ty: ObjectType, cursor: Option<&str>) -> Result<Page>;

    /// One object with its navigation data inline under Graph's names
    /// (settings, scheduled actions, definition values, script content,
    /// apps). A settings count that differs from `settingCount` is
    /// [`ProviderError::Malformed`].
    async fn get(&self, ty: ObjectType, id: &str) -> Result<Value>;

    /// Creates an object from a clean payload (see [`clean`]); returns the
    /// created entity (with its new `id`).
    async fn create(&self, ty: ObjectType, body: &Value) -> Result<Value>;

    /// Updates an object with the type's verb (PATCH, or PUT for the
    /// settings catalog).
    async fn update(&self, ty: ObjectType, id: &str, body: &Value) -> Result<()>;

    /// Deletes an object.
    async fn delete(&self, ty: ObjectType, id: &str) -> Result<()>;

    /// The object's assignments (`{coll}/{id}/assignments`).
    async fn assignments(&self, ty: ObjectType, id: &str) -> Result<Vec<Value>>;

    /// Replaces the object's whole assignment list (`{coll}/{id}/assign`
    /// with the type's wrapper key); an empty list clears it.
    async fn assign(&self, ty: ObjectType, id: &str, assignments: &[Value]) -> Result<()>;

    /// The groups whose `displayName` is exactly `name`.
    async fn find_groups(&self, name: &str) -> Result<Vec<Value>>;

    /// Every object of a type, following every page; a page that fails is
    /// the whole list's failure (never a silent gap).
    async fn list_all(&self, ty: ObjectType) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.list_page(ty, cursor.as_deref()).await?;
            out.extend(page.items);
            match page.next {
                Some(n) => cursor = Some(n),
                None => return Ok(out),
            }
        }
    }
}

/// An assignment target, as Graph spells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `#microsoft.graph.groupAssignmentTarget`.
    Group(String),
    /// `#microsoft.graph.exclusionGroupAssignmentTarget`.
    ExclusionGroup(String),
    /// `#microsoft.graph.allDevicesAssignmentTarget`.
    AllDevices,
    /// `#microsoft.graph.allLicensedUsersAssignmentTarget`.
    AllLicensedUsers,
}

/// An assignment: a target with an optional assignment filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// Who.
    pub target: Target,
    /// The filter's id (`None` for "no filter", which Graph writes as the
    /// all-zero GUID).
    pub filter_id: Option<String>,
    /// `include` or `exclude` (`none` without a filter).
    pub filter_type: String,
}

/// The all-zero GUID Graph uses for "no assignment filter".
pub const NO_FILTER: &str = "00000000-0000-0000-0000-000000000000";

impl Assignment {
    /// Reads one entry of an `assignments` list; `None` for a target this
    /// build does not know.
    pub fn from_graph(v: &Value) -> Option<Assignment> {
        let t = v.get("target")?;
        let group = || t.get("groupId").and_then(Value::as_str).map(str::to_owned);
        let target = match t.get("@odata.type")?.as_str()? {
            "#microsoft.graph.groupAssignmentTarget" => Target::Group(group()?),
            "#microsoft.graph.exclusionGroupAssignmentTarget" => Target::ExclusionGroup(group()?),
            "#microsoft.graph.allDevicesAssignmentTarget" => Target::AllDevices,
            "#microsoft.graph.allLicensedUsersAssignmentTarget" => Target::AllLicensedUsers,
            _ => return None,
        };
        let filter_id = t
            .get("deviceAndAppManagementAssignmentFilterId")
            .and_then(Value::as_str)
            .filter(|f| *f != NO_FILTER && !f.is_empty())
            .map(str::to_owned);
        let filter_type = t
            .get("deviceAndAppManagementAssignmentFilterType")
            .and_then(Value::as_str)
            .unwrap_or("none")
            .to_owned();
        Some(Assignment {
            target,
            filter_id,
            filter_type,
        })
    }

    /// The entry Graph's `assign` action takes.
    pub fn to_graph(&self) -> Value {
        let (odata, group) = match &self.target {
            Target::Group(g) => ("#microsoft.graph.groupAssignmentTarget", Some(g)),
            Target::ExclusionGroup(g) => ("#microsoft.graph.exclusionGroupAssignmentTarget", Some(g)),
            Target::AllDevices => ("#microsoft.graph.allDevicesAssignmentTarget", None),
            Target::AllLicensedUsers => ("#microsoft.graph.allLicensedUsersAssignmentTarget", None),
        };
        let mut target = json!({
            "@odata.type": odata,
            "deviceAndAppManagementAssignmentFilterId": self.filter_id.as_deref().unwrap_or(NO_FILTER),
            "deviceAndAppManagementAssignmentFilterType": if self.filter_id.is_some() { self.filter_type.as_str() } else { "none" },
        });
        if let Some(g) = group {
            target["groupId"] = json!(g);
        }
        json!({ "target": target })
    }
}

/// The demo tenants (`fixtures/tenants/`), embedded in the binary.
pub static DEMO_TENANTS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../fixtures/tenants");

/// The names of the embedded demo tenants (`contoso`, `fabrikam`, …).
pub fn demo_tenants() -> Vec<&'static str> {
    let mut names: Vec<&str> = DEMO_TENANTS
        .dirs()
        .filter_map(|d| d.path().file_name().and_then(|n| n.to_str()))
        .collect();
    names.sort_unstable();
    names
}

/// Writes the embedded demo tenant `name` into `dest` (created), so that a
/// directory provider can serve it and write its overlay beside it.
pub fn extract_demo_tenant(name: &str, dest: &std::path::Path) -> std::io::Result<()> {
    let dir = DEMO_TENANTS
        .get_dir(name)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("no demo tenant {name}")))?;
    fn write(dir: &Dir<'_>, root: &std::path::Path, dest: &std::path::Path) -> std::io::Result<()> {
        for f in dir.files() {
            let rel = f.path().strip_prefix(root).unwrap_or(f.path());
            let to = dest.join(rel);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(to, f.contents())?;
        }
        for d in dir.dirs() {
            write(d, root, dest)?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dest)?;
    write(dir, dir.path(), dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_round_trip_through_graph_json() {
        for a in [
            Assignment {
                target: Target::Group("g1".into()),
                filter_id: Some("f1".into()),
                filter_type: "include".into(),
            },
            Assignment {
                target: Target::ExclusionGroup("g2".into()),
                filter_id: None,
                filter_type: "none".into(),
            },
            Assignment {
                target: Target::AllDevices,
                filter_id: None,
                filter_type: "none".into(),
            },
            Assignment {
                target: Target::AllLicensedUsers,
                filter_id: Some("f2".into()),
                filter_type: "exclude".into(),
            },
        ] {
            assert_eq!(Assignment::from_graph(&a.to_graph()), Some(a));
        }
    }
}
