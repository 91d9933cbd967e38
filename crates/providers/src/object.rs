//! The object types a tenant provider reads and writes, and one
//! [`Descriptor`] per type saying what differs between them in Microsoft
//! Graph's beta API (collection, navigation data, update verb, assignment
//! wrapper, match key, permissions).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An object type, by its stable CONTRACT.md name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectType {
    /// `deviceManagement/deviceConfigurations`.
    DeviceConfiguration,
    /// `deviceManagement/configurationPolicies` (settings catalog).
    SettingsCatalogPolicy,
    /// `deviceManagement/deviceCompliancePolicies`.
    CompliancePolicy,
    /// `deviceManagement/groupPolicyConfigurations`.
    AdministrativeTemplate,
    /// `deviceManagement/deviceManagementScripts`.
    PowershellScript,
    /// `deviceAppManagement/mobileApps` (metadata only).
    MobileApp,
    /// `deviceAppManagement/managedAppPolicies` (read), per platform (write).
    AppProtectionPolicy,
    /// `deviceManagement/assignmentFilters`.
    AssignmentFilter,
    /// `groups` (read only).
    Group,
}

impl ObjectType {
    /// Every type, in the order a sync reads them (groups and filters
    /// first: assignments name them).
    pub const ALL: [ObjectType; 9] = [
        ObjectType::Group,
        ObjectType::AssignmentFilter,
        ObjectType::DeviceConfiguration,
        ObjectType::SettingsCatalogPolicy,
        ObjectType::CompliancePolicy,
        ObjectType::AdministrativeTemplate,
        ObjectType::PowershellScript,
        ObjectType::MobileApp,
        ObjectType::AppProtectionPolicy,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        self.descriptor().name
    }

    /// What differs for this type.
    pub fn descriptor(self) -> &'static Descriptor {
        DESCRIPTORS.iter().find(|d| d.ty == self).unwrap_or(&DESCRIPTORS[0])
    }

    /// The type whose read collection is `path` (`deviceManagement/…`).
    pub fn from_collection(path: &str) -> Option<ObjectType> {
        DESCRIPTORS.iter().find(|d| d.collection == path).map(|d| d.ty)
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ObjectType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DESCRIPTORS.iter().find(|d| d.name == s).map(|d| d.ty).ok_or_else(|| {
            let names: Vec<&str> = DESCRIPTORS.iter().map(|d| d.name).collect();
            format!("must be one of {}", names.join(", "))
        })
    }
}

/// The navigation data a full read of one object needs beyond its list
/// entry, inline under its Graph name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Navigation {
    /// The list entry is the whole object.
    None,
    /// `{coll}/{id}/settings`, paged at 25; the count read must equal the
    /// policy's `settingCount`.
    Settings,
    /// `{coll}/{id}?$expand=scheduledActionsForRule($expand=scheduledActionConfigurations)`.
    ScheduledActions,
    /// `{coll}/{id}/definitionValues?$expand=definition`, then per value
    /// `…/presentationValues?$expand=presentation`.
    DefinitionValues,
    /// `GET {coll}/{id}`: the list omits `scriptContent`.
    ItemRead,
    /// `{coll}/{id}/apps` (read through the per-platform collection).
    Apps,
}

/// How an existing object is updated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateVerb {
    /// `PATCH {coll}/{id}` with the changed properties.
    Patch,
    /// `PUT {coll}/{id}`: replaces the object (settings catalog).
    Put,
    /// Not writable.
    ReadOnly,
}

/// What differs between object types.
#[derive(Debug)]
pub struct Descriptor {
    /// The type.
    pub ty: ObjectType,
    /// Its stable name.
    pub name: &'static str,
    /// The read collection, relative to the API version (`beta/`).
    pub collection: &'static str,
    /// The property that names an object (`displayName`, or `name` for
    /// the settings catalog).
    pub name_property: &'static str,
    /// Navigation data a full read adds.
    pub navigation: Navigation,
    /// How it is updated.
    pub update: UpdateVerb,
    /// The properties that identify "the same object" in another tenant
    /// (restore's match key).
    pub match_key: &'static [&'static str],
    /// The wrapper key of an `assign` body, or `None` if the type has no
    /// assignments.
    pub assign_wrapper: Option<&'static str>,
    /// The `@odata.type` values this build knows for the type (anything
    /// else in a fixture or an answer is refused by name).
    pub odata_types: &'static [&'static str],
    /// The application permission a read needs.
    pub read_permission: &'static str,
    /// The application permission a write needs.
    pub write_permission: Option<&'static str>,
}

impl Descriptor {
    /// The collection a write of an object with this `@odata.type` goes
    /// to (app protection writes go to the per-platform collections).
    pub fn write_collection(&self, odata_type: Option<&str>) -> &'static str {
        if self.ty == ObjectType::AppProtectionPolicy {
            match odata_type {
                Some("#microsoft.graph.iosManagedAppProtection") => {
                    return "deviceAppManagement/iosManagedAppProtections";
                }
                Some("#microsoft.graph.androidManagedAppProtection") => {
                    return "deviceAppManagement/androidManagedAppProtections";
                }
                Some("#microsoft.graph.windowsManagedAppProtection") => {
                    return "deviceAppManagement/windowsManagedAppProtections";
                }
                _ => {}
            }
        }
        self.collection
    }

    /// Whether `odata_type` is one this build knows for the type.
    pub fn knows(&self, odata_type: &str) -> bool {
        self.odata_types.contains(&odata_type)
    }
}

/// Reading device configuration, settings catalog, compliance,
/// administrative templates, scripts and filters.
pub const PERM_CONFIG_READ: &str = "DeviceManagementConfiguration.Read.All";
/// Writing them.
pub const PERM_CONFIG_WRITE: &str = "DeviceManagementConfiguration.ReadWrite.All";
/// Reading apps and app protection.
pub const PERM_APPS_READ: &str = "DeviceManagementApps.Read.All";
/// Writing them.
pub const PERM_APPS_WRITE: &str = "DeviceManagementApps.ReadWrite.All";
/// Reading groups.
pub const PERM_GROUPS_READ: &str = "Group.Read.All";

/// Whether `granted` (an app's `roles`) satisfies `needed`: a ReadWrite
/// permission includes its Read.
pub fn permission_granted(granted: &[String], needed: &str) -> bool {
    granted.iter().any(|g| {
        g == needed
            || needed
                .strip_suffix(".Read.All")
                .is_some_and(|stem| *g == format!("{stem}.ReadWrite.All"))
    })
}

/// The descriptors, one per type.
pub static DESCRIPTORS: [Descriptor; 9] = [
    Descriptor {
        ty: ObjectType::DeviceConfiguration,
        name: "device_configuration",
        collection: "deviceManagement/deviceConfigurations",
        name_property: "displayName",
        navigation: Navigation::None,
        update: UpdateVerb::Patch,
        match_key: &["displayName", "@odata.type"],
        assign_wrapper: Some("assignments"),
        odata_types: &[
            "#microsoft.graph.windows10GeneralConfiguration",
            "#microsoft.graph.windows10EndpointProtectionConfiguration",
            "#microsoft.graph.windows10CustomConfiguration",
            "#microsoft.graph.windowsUpdateForBusinessConfiguration",
            "#microsoft.graph.iosGeneralDeviceConfiguration",
            "#microsoft.graph.iosDeviceFeaturesConfiguration",
            "#microsoft.graph.macOSGeneralDeviceConfiguration",
            "#microsoft.graph.androidWorkProfileGeneralDeviceConfiguration",
            "#microsoft.graph.androidDeviceOwnerGeneralDeviceConfiguration",
            "#microsoft.graph.windowsHealthMonitoringConfiguration",
            "#microsoft.graph.windowsIdentityProtectionConfiguration",
        ],
        read_permission: PERM_CONFIG_READ,
        write_permission: Some(PERM_CONFIG_WRITE),
    },
    Descriptor {
        ty: ObjectType::SettingsCatalogPolicy,
        name: "settings_catalog_policy",
        collection: "deviceManagement/configurationPolicies",
        name_property: "name",
        navigation: Navigation::Settings,
        update: UpdateVerb::Put,
        match_key: &["name", "technologies"],
        assign_wrapper: Some("assignments"),
        odata_types: &["#microsoft.graph.deviceManagementConfigurationPolicy"],
        read_permission: PERM_CONFIG_READ,
        write_permission: Some(PERM_CONFIG_WRITE),
    },
    Descriptor {
        ty: ObjectType::CompliancePolicy,
        name: "compliance_policy",
        collection: "deviceManagement/deviceCompliancePolicies",
        name_property: "displayName",
        navigation: Navigation::ScheduledActions,
        update: UpdateVerb::Patch,
        match_key: &["displayName", "@odata.type"],
        assign_wrapper: Some("assignments"),
        odata_types: &[
            "#microsoft.graph.windows10CompliancePolicy",
            "#microsoft.graph.iosCompliancePolicy",
            "#microsoft.graph.macOSCompliancePolicy",
            "#microsoft.graph.androidWorkProfileCompliancePolicy",
            "#microsoft.graph.androidDeviceOwnerCompliancePolicy",
        ],
        read_permission: PERM_CONFIG_READ,
        write_permission: Some(PERM_CONFIG_WRITE),
    },
    Descriptor {
        ty: ObjectType::AdministrativeTemplate,
        name: "administrative_template",
        collection: "deviceManagement/groupPolicyConfigurations",
        name_property: "displayName",
        navigation: Navigation::DefinitionValues,
        update: UpdateVerb::Patch,
        match_key: &["displayName"],
        assign_wrapper: Some("assignments"),
        odata_types: &["#microsoft.graph.groupPolicyConfiguration"],
        read_permission: PERM_CONFIG_READ,
        write_permission: Some(PERM_CONFIG_WRITE),
    },
    Descriptor {
        ty: ObjectType::PowershellScript,
        name: "powershell_script",
        collection: "deviceManagement/deviceManagementScripts",
        name_property: "displayName",
        navigation: Navigation::ItemRead,
        update: UpdateVerb::Patch,
        match_key: &["displayName"],
        assign_wrapper: Some("deviceManagementScriptAssignments"),
        odata_types: &["#microsoft.graph.deviceManagementScript"],
        read_permission: PERM_CONFIG_READ,
        write_permission: Some(PERM_CONFIG_WRITE),
    },
    Descriptor {
        ty: ObjectType::MobileApp,
        name: "mobile_app",
        collection: "deviceAppManagement/mobileApps",
        name_property: "displayName",
        navigation: Navigation::None,
        update: UpdateVerb::Patch,
        match_key: &["displayName", "@odata.type"],
        assign_wrapper: Some("mobileAppAssignments"),
        odata_types: &[
            "#microsoft.graph.win32LobApp",
            "#microsoft.graph.winGetApp",
            "#microsoft.graph.officeSuiteApp",
            "#microsoft.graph.iosStoreApp",
            "#microsoft.graph.iosVppApp",
            "#microsoft.graph.androidManagedStoreApp",
            "#microsoft.graph.webApp",
            "#microsoft.graph.microsoftStoreForBusinessApp",
            "#microsoft.graph.macOSMicrosoftEdgeApp",
            "#microsoft.graph.windowsMicrosoftEdgeApp",
        ],
        read_permission: PERM_APPS_READ,
        write_permission: Some(PERM_APPS_WRITE),
    },
    Descriptor {
        ty: ObjectType::AppProtectionPolicy,
        name: "app_protection_policy",
        collection: "deviceAppManagement/managedAppPolicies",
        name_property: "displayName",
        navigation: Navigation::Apps,
        update: UpdateVerb::Patch,
        match_key: &["displayName", "@odata.type"],
        assign_wrapper: Some("assignments"),
        odata_types: &[
            "#microsoft.graph.iosManagedAppProtection",
            "#microsoft.graph.androidManagedAppProtection",
            "#microsoft.graph.windowsManagedAppProtection",
        ],
        read_permission: PERM_APPS_READ,
        write_permission: Some(PERM_APPS_WRITE),
    },
    Descriptor {
        ty: ObjectType::AssignmentFilter,
        name: "assignment_filter",
        collection: "deviceManagement/assignmentFilters",
        name_property: "displayName",
        navigation: Navigation::None,
        update: UpdateVerb::Patch,
        match_key: &["displayName", "platform"],
        assign_wrapper: None,
        odata_types: &["#microsoft.graph.deviceAndAppManagementAssignmentFilter"],
        read_permission: PERM_CONFIG_READ,
        write_permission: Some(PERM_CONFIG_WRITE),
    },
    Descriptor {
        ty: ObjectType::Group,
        name: "group",
        collection: "groups",
        name_property: "displayName",
        navigation: Navigation::None,
        update: UpdateVerb::ReadOnly,
        match_key: &["displayName"],
        assign_wrapper: None,
        odata_types: &["#microsoft.graph.group"],
        read_permission: PERM_GROUPS_READ,
        write_permission: None,
    },
];

/// The application permissions a connection needs: reads always, writes
/// for restore. Named in `docs/providers.md`.
pub fn required_permissions() -> Vec<&'static str> {
    vec![PERM_CONFIG_WRITE, PERM_APPS_WRITE, PERM_GROUPS_READ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_every_type_has_one_descriptor() {
        for ty in ObjectType::ALL {
            assert_eq!(ty.as_str().parse::<ObjectType>().unwrap(), ty);
            assert_eq!(DESCRIPTORS.iter().filter(|d| d.ty == ty).count(), 1);
            assert_eq!(ObjectType::from_collection(ty.descriptor().collection), Some(ty));
        }
        let e = "policy".parse::<ObjectType>().unwrap_err();
        assert!(e.contains("device_configuration"), "{e}");
    }

    #[test]
    fn read_write_includes_read() {
        let g = vec![PERM_CONFIG_WRITE.to_owned()];
        assert!(permission_granted(&g, PERM_CONFIG_READ));
        assert!(permission_granted(&g, PERM_CONFIG_WRITE));
        assert!(!permission_granted(&g, PERM_APPS_READ));
        let r = vec![PERM_APPS_READ.to_owned()];
        assert!(!permission_granted(&r, PERM_APPS_WRITE));
    }
}
