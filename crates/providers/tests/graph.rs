//! The Microsoft Graph provider against the local Graph
//! (`tenantatlas-mockgraph`): paging, navigation reads, `$batch`, tokens,
//! throttling, permissions, writes, and failures that must be classified
//! rather than swallowed. Every test builds its own small tenant folder.

#![expect(clippy::unwrap_used, reason = "test code")]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tenantatlas_mockgraph::{MockConfig, MockGraph, RequestKind};
use tenantatlas_providers::clean::for_write;
use tenantatlas_providers::clock::{Clock, ManualClock};
use tenantatlas_providers::fixture::{FaultKind, FaultRule};
use tenantatlas_providers::graph::{ClientSecret, GraphConfig, GraphProvider, Limits, RetryPolicy};
use tenantatlas_providers::object::{PERM_APPS_READ, PERM_CONFIG_READ, PERM_CONFIG_WRITE, required_permissions};
use tenantatlas_providers::{ObjectType, ProviderError, TenantProvider};

const TENANT: &str = "6f1e8e4a-3c2b-4d7e-9a51-2f0c8b7d1a99";
const ALL_PERMISSIONS: &[&str] = &[
    "DeviceManagementConfiguration.ReadWrite.All",
    "DeviceManagementApps.ReadWrite.All",
    "Group.Read.All",
];

fn guid(prefix: u32, i: usize) -> String {
    format!("{prefix:08x}-0000-4000-8000-{i:012}")
}

fn write_json(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

fn group_assignment(group: &str) -> Value {
    json!({
        "id": format!("a_{group}"),
        "source": "direct",
        "target": {
            "@odata.type": "#microsoft.graph.groupAssignmentTarget",
            "groupId": group,
            "deviceAndAppManagementAssignmentFilterId": "00000000-0000-0000-0000-000000000000",
            "deviceAndAppManagementAssignmentFilterType": "none"
        }
    })
}

/// A tenant folder with `device_configs` device configurations, a settings
/// catalog policy with `settings` settings (and `setting_count` as its
/// `settingCount`), and one object of every other type.
fn tenant_folder(root: &Path, granted: &[&str], device_configs: usize, settings: usize, setting_count: usize) {
    write_json(
        &root.join("tenant.json"),
        &json!({
            "id": TENANT,
            "displayName": "Test Tenant",
            "domain": "test.onmicrosoft.com",
            "grantedPermissions": granted,
        }),
    );
    let beta = root.join("beta");
    let groups = vec![
        json!({"@odata.type": "#microsoft.graph.group", "id": guid(1, 1), "displayName": "All Staff", "securityEnabled": true}),
        json!({"@odata.type": "#microsoft.graph.group", "id": guid(1, 2), "displayName": "O'Brien & Co #1", "securityEnabled": true}),
    ];
    write_json(&beta.join("groups.json"), &json!({ "value": groups }));
    let dcs: Vec<Value> = (0..device_configs)
        .map(|i| {
            json!({
                "@odata.type": "#microsoft.graph.windows10GeneralConfiguration",
                "id": guid(2, i),
                "displayName": format!("Device configuration {i:02}"),
                "version": 1,
                "createdDateTime": "2024-01-01T00:00:00Z",
                "lastModifiedDateTime": "2024-01-01T00:00:00Z",
                "passwordRequired": i % 2 == 0,
                "assignments": if i == 0 { vec![group_assignment(&guid(1, 1))] } else { vec![] },
            })
        })
        .collect();
    write_json(
        &beta.join("deviceManagement/deviceConfigurations.json"),
        &json!({ "value": dcs }),
    );
    let settings_list: Vec<Value> = (0..settings)
        .map(|i| {
            json!({
                "id": i.to_string(),
                "settingInstance": {
                    "@odata.type": "#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance",
                    "settingDefinitionId": format!("device_vendor_msft_policy_config_setting_{i}"),
                    "choiceSettingValue": {"value": format!("device_vendor_msft_policy_config_setting_{i}_1"), "children": []}
                }
            })
        })
        .collect();
    write_json(
        &beta.join("deviceManagement/configurationPolicies.json"),
        &json!({"value": [{
            "@odata.type": "#microsoft.graph.deviceManagementConfigurationPolicy",
            "id": guid(3, 1),
            "name": "WIN - Big settings catalog policy",
            "description": "",
            "platforms": "windows10",
            "technologies": "mdm",
            "settingCount": setting_count,
            "roleScopeTagIds": ["0"],
            "createdDateTime": "2024-01-01T00:00:00Z",
            "lastModifiedDateTime": "2024-01-01T00:00:00Z",
            "settings": settings_list,
            "assignments": [],
        }]}),
    );
    write_json(
        &beta.join("deviceManagement/deviceCompliancePolicies.json"),
        &json!({"value": [{
            "@odata.type": "#microsoft.graph.windows10CompliancePolicy",
            "id": guid(4, 1),
            "displayName": "WIN - Compliance",
            "version": 1,
            "passwordRequired": true,
            "scheduledActionsForRule": [{
                "id": guid(4, 2),
                "ruleName": "PasswordRequired",
                "scheduledActionConfigurations": [{
                    "id": guid(4, 3),
                    "gracePeriodHours": 0,
                    "actionType": "block",
                    "notificationTemplateId": "00000000-0000-0000-0000-000000000000",
                    "notificationMessageCCList": []
                }]
            }],
            "assignments": [],
        }]}),
    );
    let definition = |i: usize, name: &str| {
        json!({
            "@odata.type": "#microsoft.graph.groupPolicyDefinition",
            "id": guid(5, 100 + i),
            "displayName": name,
            "classType": "machine",
            "categoryPath": "\\Microsoft Edge\\SmartScreen settings",
            "policyType": "admxBacked",
        })
    };
    write_json(
        &beta.join("deviceManagement/groupPolicyConfigurations.json"),
        &json!({"value": [{
            "@odata.type": "#microsoft.graph.groupPolicyConfiguration",
            "id": guid(5, 1),
            "displayName": "WIN - Edge (ADMX)",
            "definitionValues": [
                {
                    "@odata.type": "#microsoft.graph.groupPolicyDefinitionValue",
                    "id": guid(5, 11),
                    "enabled": true,
                    "configurationType": "policy",
                    "definition": definition(1, "Configure SmartScreen"),
                    "presentationValues": []
                },
                {
                    "@odata.type": "#microsoft.graph.groupPolicyDefinitionValue",
                    "id": guid(5, 12),
                    "enabled": true,
                    "configurationType": "policy",
                    "definition": definition(2, "Home page"),
                    "presentationValues": [{
                        "@odata.type": "#microsoft.graph.groupPolicyPresentationValueText",
                        "id": guid(5, 21),
                        "value": "https://www.office.com",
                        "presentation": {
                            "@odata.type": "#microsoft.graph.groupPolicyPresentationTextBox",
                            "id": guid(5, 31),
                            "label": "Home page URL"
                        }
                    }]
                }
            ],
            "assignments": [],
        }]}),
    );
    write_json(
        &beta.join("deviceManagement/deviceManagementScripts.json"),
        &json!({"value": [{
            "@odata.type": "#microsoft.graph.deviceManagementScript",
            "id": guid(6, 1),
            "displayName": "Set time zone",
            "fileName": "tz.ps1",
            "runAsAccount": "system",
            "scriptContent": "U2V0LVRpbWVab25lIC1JZCAnVVRDJw==",
            "assignments": [],
        }]}),
    );
    write_json(
        &beta.join("deviceAppManagement/mobileApps.json"),
        &json!({"value": [{
            "@odata.type": "#microsoft.graph.webApp",
            "id": guid(7, 1),
            "displayName": "Intranet",
            "appUrl": "https://intranet.example.com",
            "assignments": [],
        }]}),
    );
    write_json(
        &beta.join("deviceAppManagement/managedAppPolicies.json"),
        &json!({"value": [{
            "@odata.type": "#microsoft.graph.iosManagedAppProtection",
            "id": guid(8, 1),
            "displayName": "iOS - Protect corporate data",
            "pinRequired": true,
            "apps": [{
                "@odata.type": "#microsoft.graph.managedMobileApp",
                "id": "com.microsoft.office.outlook.ios",
                "mobileAppIdentifier": {"@odata.type": "#microsoft.graph.iosMobileAppIdentifier", "bundleId": "com.microsoft.office.outlook"}
            }],
            "assignments": [],
        }]}),
    );
    write_json(
        &beta.join("deviceManagement/assignmentFilters.json"),
        &json!({"value": [{
            "@odata.type": "#microsoft.graph.deviceAndAppManagementAssignmentFilter",
            "id": guid(9, 1),
            "displayName": "Corporate Windows",
            "platform": "windows10AndLater",
            "rule": "(device.deviceOwnership -eq \"Corporate\")",
        }]}),
    );
}

struct Env {
    _dir: tempfile::TempDir,
    mock: MockGraph,
}

async fn start(cfg: impl FnOnce(MockConfig) -> MockConfig, granted: &[&str], settings: (usize, usize)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tenant");
    tenant_folder(&root, granted, 30, settings.0, settings.1);
    let mock = tenantatlas_mockgraph::start(
        cfg(MockConfig::new().tenant(TENANT, &root)),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .unwrap();
    Env { _dir: dir, mock }
}

async fn standard() -> Env {
    start(|c| c, ALL_PERMISSIONS, (60, 60)).await
}

/// Retries quick enough for tests.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(10),
    }
}

fn config(graph: &str, login: &str, secret: &str) -> GraphConfig {
    let mut c = GraphConfig::new(
        TENANT,
        "11111111-2222-4333-8444-555555555555",
        ClientSecret::new(secret),
    );
    c.graph_url = graph.to_owned();
    c.login_url = login.to_owned();
    c.retry = fast_retry();
    c
}

fn provider(env: &Env) -> GraphProvider {
    let base = env.mock.base_url();
    GraphProvider::new(config(base, base, "any-secret-value")).unwrap()
}

fn graph_records(mock: &MockGraph) -> Vec<tenantatlas_mockgraph::RequestRecord> {
    mock.requests()
        .into_iter()
        .filter(|r| r.kind == RequestKind::Graph)
        .collect()
}

fn fault(path: &str, kind: FaultKind) -> FaultRule {
    FaultRule {
        path: path.to_owned(),
        method: None,
        fault: kind,
        retry_after: None,
        times: None,
        page: None,
        permission: None,
    }
}

#[tokio::test]
async fn lists_page_past_25_and_settings_are_read_past_25() {
    let env = standard().await;
    let p = provider(&env);
    let first = p.list_page(ObjectType::DeviceConfiguration, None).await.unwrap();
    assert_eq!(first.items.len(), 25);
    let next = first.next.clone().expect("a second page");
    assert!(next.starts_with(env.mock.base_url()), "{next}");
    let all = p.list_all(ObjectType::DeviceConfiguration).await.unwrap();
    assert_eq!(all.len(), 30);
    let mut ids: Vec<&str> = all.iter().map(|v| v["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 30, "no item twice, none missing");
    assert!(all.iter().all(|v| v["@odata.type"].is_string()));
    assert!(
        all.iter().all(|v| v.get("assignments").is_none()),
        "a list has no navigation data"
    );

    let policy = p.get(ObjectType::SettingsCatalogPolicy, &guid(3, 1)).await.unwrap();
    let settings = policy["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 60);
    assert_eq!(settings[59]["id"], "59");
    let pages = graph_records(&env.mock)
        .iter()
        .filter(|r| r.path.contains("/settings"))
        .count();
    assert_eq!(pages, 3, "60 settings in pages of 25");
}

#[tokio::test]
async fn a_settings_count_that_differs_from_setting_count_is_a_failure_naming_the_policy() {
    let env = start(|c| c, ALL_PERMISSIONS, (60, 61)).await;
    let p = provider(&env);
    let e = p.get(ObjectType::SettingsCatalogPolicy, &guid(3, 1)).await.unwrap_err();
    let ProviderError::Malformed(m) = &e else {
        panic!("{e:?}")
    };
    assert!(m.contains("WIN - Big settings catalog policy"), "{m}");
    assert!(
        m.contains("read 60 settings") && m.contains("settingCount is 61"),
        "{m}"
    );
}

#[tokio::test]
async fn navigation_reads_of_every_type() {
    let env = standard().await;
    let p = provider(&env);

    let c = p.get(ObjectType::CompliancePolicy, &guid(4, 1)).await.unwrap();
    assert_eq!(
        c["scheduledActionsForRule"][0]["scheduledActionConfigurations"][0]["actionType"],
        "block"
    );

    env.mock.clear_requests();
    let t = p.get(ObjectType::AdministrativeTemplate, &guid(5, 1)).await.unwrap();
    let dvs = t["definitionValues"].as_array().unwrap();
    assert_eq!(dvs.len(), 2);
    assert_eq!(dvs[0]["definition"]["displayName"], "Configure SmartScreen");
    assert_eq!(dvs[0]["presentationValues"], json!([]));
    assert_eq!(dvs[1]["presentationValues"][0]["value"], "https://www.office.com");
    assert_eq!(
        dvs[1]["presentationValues"][0]["presentation"]["label"],
        "Home page URL"
    );
    let recs = env.mock.requests();
    assert_eq!(
        recs.iter().filter(|r| r.kind == RequestKind::Batch).count(),
        1,
        "presentation values of both definition values in one $batch"
    );
    assert_eq!(recs.iter().filter(|r| r.in_batch).count(), 2);

    let s = p.get(ObjectType::PowershellScript, &guid(6, 1)).await.unwrap();
    assert_eq!(s["scriptContent"], "U2V0LVRpbWVab25lIC1JZCAnVVRDJw==");

    env.mock.clear_requests();
    let a = p.get(ObjectType::AppProtectionPolicy, &guid(8, 1)).await.unwrap();
    assert_eq!(
        a["apps"][0]["mobileAppIdentifier"]["bundleId"],
        "com.microsoft.office.outlook"
    );
    assert!(
        graph_records(&env.mock)
            .iter()
            .any(|r| r.path.contains("/iosManagedAppProtections/") && r.path.ends_with("/apps")),
        "apps are read through the platform collection"
    );

    let app = p.get(ObjectType::MobileApp, &guid(7, 1)).await.unwrap();
    assert_eq!(app["@odata.type"], "#microsoft.graph.webApp");

    let assignments = p
        .assignments(ObjectType::DeviceConfiguration, &guid(2, 0))
        .await
        .unwrap();
    assert_eq!(assignments.len(), 1);
    assert_eq!(assignments[0]["target"]["groupId"], guid(1, 1));

    let gone = p.get(ObjectType::DeviceConfiguration, &guid(2, 999)).await.unwrap_err();
    assert!(matches!(gone, ProviderError::NotFound(_)), "{gone:?}");
}

#[tokio::test]
async fn access_reads_the_granted_permissions_from_the_token() {
    let env = standard().await;
    let p = provider(&env);
    let a = p.access().await.unwrap();
    assert_eq!(a.tenant_id, TENANT);
    for needed in required_permissions() {
        assert!(a.granted.iter().any(|g| g == needed), "{needed} in {:?}", a.granted);
    }
    // The token is cached: a second call and a read sign in no more.
    p.access().await.unwrap();
    p.list_page(ObjectType::Group, None).await.unwrap();
    assert_eq!(env.mock.stats().token_requests, 1);
}

#[tokio::test]
async fn a_token_expiring_mid_run_is_refreshed_once_on_401_and_the_request_retried() {
    let env = standard().await;
    let p = provider(&env);
    let first = p.list_page(ObjectType::DeviceConfiguration, None).await.unwrap();
    env.mock
        .add_faults(
            TENANT,
            vec![FaultRule {
                times: Some(1),
                ..fault("deviceManagement/deviceConfigurations", FaultKind::ExpireToken)
            }],
        )
        .unwrap();
    let second = p
        .list_page(ObjectType::DeviceConfiguration, first.next.as_deref())
        .await
        .unwrap();
    assert_eq!(second.items.len(), 5);
    assert_eq!(env.mock.stats().token_requests, 2, "one refresh");
    let statuses: Vec<u16> = graph_records(&env.mock).iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 401, 200]);

    // A token Graph keeps refusing is a failure after the one refresh,
    // not a loop.
    env.mock
        .add_faults(
            TENANT,
            vec![fault(
                "deviceManagement/deviceCompliancePolicies",
                FaultKind::ExpireToken,
            )],
        )
        .unwrap();
    let e = p.list_page(ObjectType::CompliancePolicy, None).await.unwrap_err();
    assert!(matches!(e, ProviderError::AuthFailed(_)), "{e:?}");
    assert_eq!(env.mock.stats().token_requests, 3);
}

#[tokio::test]
async fn a_short_lived_token_is_replaced_before_it_expires() {
    let env = start(|c| c.token_lifetime(Duration::from_secs(2)), ALL_PERMISSIONS, (1, 1)).await;
    let p = provider(&env);
    p.list_page(ObjectType::Group, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    p.list_page(ObjectType::Group, None).await.unwrap();
    assert_eq!(env.mock.stats().token_requests, 2);
    assert!(
        graph_records(&env.mock).iter().all(|r| r.status == 200),
        "refreshed before Graph refused it"
    );
}

#[tokio::test]
async fn batch_item_failures_are_reported_never_dropped_and_throttled_items_retried_alone() {
    let env = standard().await;
    let p = provider(&env);
    let item = |i: usize| format!("deviceManagement/deviceConfigurations/{}", guid(2, i));
    env.mock
        .add_faults(
            TENANT,
            vec![
                FaultRule {
                    times: Some(1),
                    retry_after: Some("0.2".into()),
                    ..fault(&item(2), FaultKind::Throttle)
                },
                fault(&item(3), FaultKind::Forbidden),
                fault(&item(4), FaultKind::Unavailable),
            ],
        )
        .unwrap();
    let mut paths: Vec<String> = (0..25).map(item).collect();
    paths[1] = "deviceManagement/deviceConfigurations/00000000-0000-4000-8000-999999999999".into();
    let started = Instant::now();
    let results = p.batch_get(&paths).await;
    assert_eq!(results.len(), 25);
    assert_eq!(results[0].as_ref().unwrap()["id"], guid(2, 0));
    assert!(
        matches!(results[1], Err(ProviderError::NotFound(_))),
        "{:?}",
        results[1]
    );
    assert_eq!(
        results[2].as_ref().unwrap()["id"],
        guid(2, 2),
        "throttled, then retried"
    );
    assert_eq!(
        results[3],
        Err(ProviderError::PermissionMissing {
            permission: PERM_CONFIG_READ.into()
        })
    );
    assert!(
        matches!(results[4], Err(ProviderError::Unavailable(_))),
        "{:?}",
        results[4]
    );
    for (i, r) in results.iter().enumerate().skip(5) {
        assert_eq!(r.as_ref().unwrap()["id"], guid(2, i), "item {i}");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "waited its Retry-After"
    );
    let recs = env.mock.requests();
    assert_eq!(
        recs.iter().filter(|r| r.kind == RequestKind::Batch).count(),
        2,
        "25 reads in batches of at most 20"
    );
    let alone: Vec<_> = recs
        .iter()
        .filter(|r| r.kind == RequestKind::Graph && !r.in_batch)
        .collect();
    assert_eq!(alone.len(), 1, "only the throttled item was sent again: {alone:?}");
    assert!(alone[0].path.ends_with(&guid(2, 2)));
    assert_eq!(p.stats().throttled, 1);
}

#[tokio::test]
async fn a_token_expiring_inside_a_batch_is_refreshed_and_the_refused_items_read_again() {
    let env = standard().await;
    let p = provider(&env);
    let item = |i: usize| format!("deviceManagement/deviceConfigurations/{}", guid(2, i));
    p.access().await.unwrap();
    env.mock
        .add_faults(
            TENANT,
            vec![FaultRule {
                times: Some(1),
                ..fault(&item(3), FaultKind::ExpireToken)
            }],
        )
        .unwrap();
    let paths: Vec<String> = (0..6).map(item).collect();
    let results = p.batch_get(&paths).await;
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.as_ref().unwrap()["id"], guid(2, i), "item {i}");
    }
    assert_eq!(env.mock.stats().token_requests, 2, "one refresh");
    let alone = graph_records(&env.mock).into_iter().filter(|r| !r.in_batch).count();
    assert!(alone >= 3, "items 3, 4 and 5 were refused and read again: {alone}");
}

#[tokio::test]
async fn throttling_honours_a_decimal_retry_after_then_gives_up_with_throttled() {
    let env = standard().await;
    let p = provider(&env);
    env.mock
        .add_faults(
            TENANT,
            vec![FaultRule {
                method: Some("GET".into()),
                times: Some(2),
                retry_after: Some("0.3".into()),
                ..fault("deviceManagement/assignmentFilters", FaultKind::Throttle)
            }],
        )
        .unwrap();
    let started = Instant::now();
    let page = p.list_page(ObjectType::AssignmentFilter, None).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(page.items.len(), 1);
    assert!(waited >= Duration::from_millis(600), "two waits of 0.3 s: {waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(p.stats().throttled, 2);

    // Always throttled: the bounded attempts end in Throttled, carrying
    // Graph's wait for the engine.
    env.mock
        .add_faults(
            TENANT,
            vec![FaultRule {
                retry_after: Some("0.05".into()),
                ..fault("deviceManagement/deviceManagementScripts", FaultKind::Throttle)
            }],
        )
        .unwrap();
    env.mock.clear_requests();
    let e = p.list_page(ObjectType::PowershellScript, None).await.unwrap_err();
    assert_eq!(
        e,
        ProviderError::Throttled {
            retry_after: Some(Duration::from_millis(50))
        }
    );
    assert_eq!(graph_records(&env.mock).len(), 3, "max_attempts");

    // Throttled without a Retry-After: exponential backoff between the
    // attempts, and the backoff's next ceiling handed to the engine.
    env.mock
        .add_faults(
            TENANT,
            vec![fault("deviceManagement/deviceCompliancePolicies", FaultKind::Throttle)],
        )
        .unwrap();
    env.mock.clear_requests();
    let e = p.list_page(ObjectType::CompliancePolicy, None).await.unwrap_err();
    assert_eq!(
        e,
        ProviderError::Throttled {
            retry_after: Some(Duration::from_millis(50))
        },
        "min(cap 50 ms, 10 ms * 2^3)"
    );
    assert_eq!(graph_records(&env.mock).len(), 3);

    // A wait longer than the provider holds a caller is handed back at once.
    env.mock
        .add_faults(
            TENANT,
            vec![FaultRule {
                retry_after: Some("300".into()),
                ..fault("deviceAppManagement/mobileApps", FaultKind::Throttle)
            }],
        )
        .unwrap();
    env.mock.clear_requests();
    let started = Instant::now();
    let e = p.list_page(ObjectType::MobileApp, None).await.unwrap_err();
    assert_eq!(
        e,
        ProviderError::Throttled {
            retry_after: Some(Duration::from_secs(300))
        }
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(graph_records(&env.mock).len(), 1);
}

#[tokio::test]
async fn a_throttling_graph_is_read_completely() {
    // One request in five answered 429 with a decimal Retry-After.
    let env = start(|c| c.throttle(0.2, "0.05"), ALL_PERMISSIONS, (60, 60)).await;
    let p = provider(&env);
    let all = p.list_all(ObjectType::DeviceConfiguration).await.unwrap();
    assert_eq!(all.len(), 30);
    let policy = p.get(ObjectType::SettingsCatalogPolicy, &guid(3, 1)).await.unwrap();
    assert_eq!(policy["settings"].as_array().unwrap().len(), 60);
    let t = p.get(ObjectType::AdministrativeTemplate, &guid(5, 1)).await.unwrap();
    assert_eq!(t["definitionValues"].as_array().unwrap().len(), 2);
    assert!(p.stats().throttled > 0, "the mock throttled: {:?}", env.mock.stats());
}

#[tokio::test]
async fn a_page_that_stays_broken_fails_the_list_after_its_retries() {
    let env = standard().await;
    let p = provider(&env);
    env.mock
        .add_faults(
            TENANT,
            vec![FaultRule {
                page: Some(2),
                ..fault("deviceManagement/deviceConfigurations", FaultKind::BrokenPage)
            }],
        )
        .unwrap();
    let e = p.list_all(ObjectType::DeviceConfiguration).await.unwrap_err();
    assert!(matches!(e, ProviderError::Unavailable(_)), "{e:?}");
    assert!(e.retryable());
    let statuses: Vec<u16> = graph_records(&env.mock).iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 500, 500, 500]);
}

#[tokio::test]
async fn a_missing_permission_is_named_for_reads_and_writes() {
    let env = start(
        |c| c,
        &["Group.Read.All", "DeviceManagementConfiguration.Read.All"],
        (1, 1),
    )
    .await;
    let p = provider(&env);
    let a = p.access().await.unwrap();
    assert_eq!(
        a.granted,
        vec!["Group.Read.All", "DeviceManagementConfiguration.Read.All"]
    );
    let e = p.list_page(ObjectType::MobileApp, None).await.unwrap_err();
    assert_eq!(
        e,
        ProviderError::PermissionMissing {
            permission: PERM_APPS_READ.into()
        }
    );
    let body = json!({
        "@odata.type": "#microsoft.graph.deviceAndAppManagementAssignmentFilter",
        "displayName": "New filter",
        "platform": "windows10AndLater",
        "rule": "(device.osVersion -startsWith \"10\")"
    });
    let e = p.create(ObjectType::AssignmentFilter, &body).await.unwrap_err();
    assert_eq!(
        e,
        ProviderError::PermissionMissing {
            permission: PERM_CONFIG_WRITE.into()
        }
    );
    assert_eq!(e.reason().as_str(), "provider.permission_missing");
    assert!(p.list_page(ObjectType::Group, None).await.is_ok());
}

#[tokio::test]
async fn a_wrong_secret_is_auth_failed_and_the_secret_is_never_in_the_message() {
    let env = start(|c| c.client_secret("the-right-secret-value"), ALL_PERMISSIONS, (1, 1)).await;
    let base = env.mock.base_url();
    let secret = "Wr0ng~Secret.Value-1234567890";
    let p = GraphProvider::new(config(base, base, secret)).unwrap();
    let e = p.access().await.unwrap_err();
    let ProviderError::AuthFailed(m) = &e else {
        panic!("{e:?}")
    };
    assert!(m.contains("invalid_client") && m.contains("AADSTS7000215"), "{m}");
    assert!(!m.contains("Trace ID"), "only the first line: {m}");
    let shown = format!("{e} {e:?} {}", e.safe_message());
    assert!(!shown.contains(secret), "{shown}");
    let e = p.list_page(ObjectType::Group, None).await.unwrap_err();
    assert!(matches!(e, ProviderError::AuthFailed(_)), "{e:?}");
    assert!(!e.retryable());

    // An unknown tenant is refused by the sign-in service too.
    let mut c = config(base, base, "the-right-secret-value");
    c.tenant = "nowhere.onmicrosoft.com".into();
    let e = GraphProvider::new(c).unwrap().access().await.unwrap_err();
    let ProviderError::AuthFailed(m) = &e else {
        panic!("{e:?}")
    };
    assert!(m.contains("AADSTS90002"), "{m}");
}

#[tokio::test]
async fn an_unreachable_graph_is_unavailable_quickly() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = format!("http://{closed}");
    let p = GraphProvider::new(config(&url, &url, "secret-value")).unwrap();
    let started = Instant::now();
    let e = p.access().await.unwrap_err();
    assert!(matches!(e, ProviderError::Unavailable(_)), "{e:?}");
    assert!(e.retryable());
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    // Sign-in works, Graph does not answer.
    let env = standard().await;
    let p = GraphProvider::new(config(&url, env.mock.base_url(), "secret-value")).unwrap();
    let started = Instant::now();
    let e = p.list_page(ObjectType::Group, None).await.unwrap_err();
    assert!(
        matches!(e, ProviderError::Unavailable(ref m) if m.contains("cannot be reached")),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_cursor_pointing_elsewhere_is_refused_before_any_request() {
    let env = standard().await;
    let p = provider(&env);
    let e = p
        .list_page(
            ObjectType::Group,
            Some("https://attacker.example/beta/groups?$skiptoken=x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Malformed(_)), "{e:?}");
    assert_eq!(env.mock.stats().requests, 0, "not even a token request");
}

#[tokio::test]
async fn writes_follow_each_types_descriptor() {
    let env = standard().await;
    let p = provider(&env);

    // Device configuration: create from a clean copy, PATCH, assign, read
    // the assignments back, delete.
    let src = p.get(ObjectType::DeviceConfiguration, &guid(2, 1)).await.unwrap();
    let mut body = for_write(ObjectType::DeviceConfiguration, &src);
    body["displayName"] = json!("Restored copy");
    let created = p.create(ObjectType::DeviceConfiguration, &body).await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    p.update(
        ObjectType::DeviceConfiguration,
        &id,
        &json!({"@odata.type": "#microsoft.graph.windows10GeneralConfiguration", "description": "patched"}),
    )
    .await
    .unwrap();
    assert_eq!(
        env.mock.object(TENANT, ObjectType::DeviceConfiguration, &id).unwrap()["description"],
        "patched"
    );
    let target = tenantatlas_providers::Assignment {
        target: tenantatlas_providers::Target::Group(guid(1, 2)),
        filter_id: Some(guid(9, 1)),
        filter_type: "include".into(),
    };
    p.assign(ObjectType::DeviceConfiguration, &id, &[target.to_graph()])
        .await
        .unwrap();
    let read = p.assignments(ObjectType::DeviceConfiguration, &id).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(tenantatlas_providers::Assignment::from_graph(&read[0]), Some(target));
    p.assign(ObjectType::DeviceConfiguration, &id, &[]).await.unwrap();
    assert!(
        p.assignments(ObjectType::DeviceConfiguration, &id)
            .await
            .unwrap()
            .is_empty()
    );
    p.delete(ObjectType::DeviceConfiguration, &id).await.unwrap();
    assert!(matches!(
        p.get(ObjectType::DeviceConfiguration, &id).await,
        Err(ProviderError::NotFound(_))
    ));

    // Settings catalog: PUT replaces the policy, settings included.
    let policy = p.get(ObjectType::SettingsCatalogPolicy, &guid(3, 1)).await.unwrap();
    let mut body = for_write(ObjectType::SettingsCatalogPolicy, &policy);
    body["settings"] = json!(policy["settings"].as_array().unwrap()[..10].to_vec());
    let body = for_write(ObjectType::SettingsCatalogPolicy, &body);
    p.update(ObjectType::SettingsCatalogPolicy, &guid(3, 1), &body)
        .await
        .unwrap();
    let after = p.get(ObjectType::SettingsCatalogPolicy, &guid(3, 1)).await.unwrap();
    assert_eq!(after["settings"].as_array().unwrap().len(), 10);
    assert_eq!(after["settingCount"], 10);

    // Compliance: PATCH without the scheduled actions, then
    // scheduleActionsForRules.
    let c = p.get(ObjectType::CompliancePolicy, &guid(4, 1)).await.unwrap();
    let mut body = for_write(ObjectType::CompliancePolicy, &c);
    body["scheduledActionsForRule"][0]["scheduledActionConfigurations"][0]["gracePeriodHours"] = json!(24);
    p.update(ObjectType::CompliancePolicy, &guid(4, 1), &body)
        .await
        .unwrap();
    let c = p.get(ObjectType::CompliancePolicy, &guid(4, 1)).await.unwrap();
    assert_eq!(
        c["scheduledActionsForRule"][0]["scheduledActionConfigurations"][0]["gracePeriodHours"],
        24
    );

    // App protection: created in its platform's collection, then its apps.
    let a = p.get(ObjectType::AppProtectionPolicy, &guid(8, 1)).await.unwrap();
    let mut body = for_write(ObjectType::AppProtectionPolicy, &a);
    body["displayName"] = json!("iOS - copy");
    let created = p.create(ObjectType::AppProtectionPolicy, &body).await.unwrap();
    let new_id = created["id"].as_str().unwrap().to_owned();
    let copy = p.get(ObjectType::AppProtectionPolicy, &new_id).await.unwrap();
    assert_eq!(
        copy["apps"][0]["mobileAppIdentifier"]["bundleId"],
        "com.microsoft.office.outlook"
    );

    // Administrative template: created empty, then its definition values.
    let t = p.get(ObjectType::AdministrativeTemplate, &guid(5, 1)).await.unwrap();
    let body = for_write(ObjectType::AdministrativeTemplate, &t);
    // `for_write` strips ids; the definitions are referenced by bind.
    let mut body = body;
    for (i, dv) in body["definitionValues"].as_array_mut().unwrap().iter_mut().enumerate() {
        let def = t["definitionValues"][i]["definition"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        dv.as_object_mut().unwrap().remove("definition");
        dv["definition@odata.bind"] = json!(format!(
            "{}/beta/deviceManagement/groupPolicyDefinitions('{def}')",
            env.mock.base_url()
        ));
        for (j, pv) in dv["presentationValues"].as_array_mut().unwrap().iter_mut().enumerate() {
            let pres = t["definitionValues"][i]["presentationValues"][j]["presentation"]["id"]
                .as_str()
                .unwrap()
                .to_owned();
            pv.as_object_mut().unwrap().remove("presentation");
            pv["presentation@odata.bind"] = json!(format!(
                "{}/beta/deviceManagement/groupPolicyDefinitions('{def}')/presentations('{pres}')",
                env.mock.base_url()
            ));
        }
    }
    let mut body = body;
    body["displayName"] = json!("WIN - Edge (ADMX) copy");
    let created = p.create(ObjectType::AdministrativeTemplate, &body).await.unwrap();
    let copy_id = created["id"].as_str().unwrap().to_owned();
    let copy = p.get(ObjectType::AdministrativeTemplate, &copy_id).await.unwrap();
    let dvs = copy["definitionValues"].as_array().unwrap();
    assert_eq!(dvs.len(), 2);
    assert_eq!(dvs[1]["presentationValues"][0]["value"], "https://www.office.com");
    // An update replaces the definition values.
    let mut one = body.clone();
    one["definitionValues"] = json!([body["definitionValues"][0].clone()]);
    p.update(ObjectType::AdministrativeTemplate, &copy_id, &one)
        .await
        .unwrap();
    let copy = p.get(ObjectType::AdministrativeTemplate, &copy_id).await.unwrap();
    assert_eq!(copy["definitionValues"].as_array().unwrap().len(), 1);

    // Groups are read only; find_groups escapes quotes.
    let e = p
        .create(ObjectType::Group, &json!({"displayName": "x"}))
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::InvalidPayload(_)), "{e:?}");
    let found = p.find_groups("O'Brien & Co #1").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], guid(1, 2));
    assert!(p.find_groups("Nobody").await.unwrap().is_empty());

    // Every write the mock saw was clean (it answers 400 otherwise) and
    // nothing was refused.
    assert!(
        env.mock.writes().iter().all(|r| r.status < 300),
        "{:?}",
        env.mock.writes()
    );
}

#[tokio::test]
async fn graphs_own_400_message_is_passed_on_sanitized() {
    let env = standard().await;
    let p = provider(&env);
    let src = p.get(ObjectType::DeviceConfiguration, &guid(2, 1)).await.unwrap();
    // Not cleaned: Graph refuses the read-only properties, naming them.
    let e = p.create(ObjectType::DeviceConfiguration, &src).await.unwrap_err();
    let ProviderError::InvalidPayload(m) = &e else {
        panic!("{e:?}")
    };
    assert!(m.contains("read-only"), "{m}");
    assert!(!e.retryable());
}

#[tokio::test]
async fn the_write_limiter_holds_the_third_write_until_the_window_moves() {
    let env = standard().await;
    let base = env.mock.base_url();
    let mut c = config(base, base, "secret-value");
    c.limits = Limits {
        writes: 2,
        requests: 100,
        window: Duration::from_secs(20),
    };
    let clock = Arc::new(ManualClock::new());
    let p = Arc::new(GraphProvider::with_parts(c, reqwest::Client::new(), clock.clone() as Arc<dyn Clock>).unwrap());
    let body = |n: usize| {
        json!({
            "@odata.type": "#microsoft.graph.deviceAndAppManagementAssignmentFilter",
            "displayName": format!("Filter {n}"),
            "platform": "windows10AndLater",
            "rule": "(device.osVersion -startsWith \"10\")"
        })
    };
    p.create(ObjectType::AssignmentFilter, &body(1)).await.unwrap();
    p.create(ObjectType::AssignmentFilter, &body(2)).await.unwrap();
    let p2 = Arc::clone(&p);
    let third = tokio::spawn(async move { p2.create(ObjectType::AssignmentFilter, &body(3)).await });
    clock.wait_for_sleepers(1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!third.is_finished());
    assert_eq!(env.mock.writes().len(), 2, "the third write waits for the window");
    // Reads still go.
    p.list_page(ObjectType::AssignmentFilter, None).await.unwrap();
    clock.advance(Duration::from_secs(20));
    tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("released when the window moved")
        .unwrap()
        .unwrap();
    assert_eq!(env.mock.writes().len(), 3);
}
