//! The local Graph, driven over HTTP the way the Graph provider drives
//! Microsoft Graph: tokens, paging, reads with navigation data, strict
//! writes, assignments, `$batch`, every fault kind, permissions and the
//! request log. Each test serves its own small tenant folders from a
//! temporary directory.

#![expect(clippy::unwrap_used, reason = "test code")]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::Method;
use serde_json::{Value, json};
use tenantatlas_mockgraph::{MockConfig, MockGraph, RequestKind, RequestRecord, Stats, start};
use tenantatlas_providers::fixture::{FaultKind, FaultRule};
use tenantatlas_providers::object::ObjectType;

const A: &str = "11111111-1111-4111-8111-111111111111";
const A_DOMAIN: &str = "alpha.onmicrosoft.com";
const B: &str = "22222222-2222-4222-8222-222222222222";
const DC: &str = "deviceManagement/deviceConfigurations";
const SC: &str = "deviceManagement/configurationPolicies";
const CP: &str = "deviceManagement/deviceCompliancePolicies";
const GP: &str = "deviceManagement/groupPolicyConfigurations";
const PS: &str = "deviceManagement/deviceManagementScripts";
const APPS: &str = "deviceAppManagement/mobileApps";
const FILTERS: &str = "deviceManagement/assignmentFilters";

fn write(root: &Path, rel: &str, v: &Value) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

fn group_target(g: &str) -> Value {
    json!({"target": {
        "@odata.type": "#microsoft.graph.groupAssignmentTarget",
        "groupId": g,
        "deviceAndAppManagementAssignmentFilterId": "00000000-0000-0000-0000-000000000000",
        "deviceAndAppManagementAssignmentFilterType": "none"
    }})
}

/// Tenant A: every type, 60 device configurations, a settings catalog
/// policy with 30 settings, full permissions.
fn tenant_a(root: &Path) {
    write(
        root,
        "tenant.json",
        &json!({"id": A, "displayName": "Alpha", "domain": A_DOMAIN, "grantedPermissions": [
            "DeviceManagementConfiguration.ReadWrite.All", "DeviceManagementApps.ReadWrite.All", "Group.Read.All"]}),
    );
    let dcs: Vec<Value> = (0..60)
        .map(|i| {
            json!({
                "@odata.type": "#microsoft.graph.windows10GeneralConfiguration",
                "id": format!("dc-{i:02}"),
                "displayName": format!("Config {i:02}"),
                "version": 1,
                "passwordRequired": true,
                "assignments": [{"id": format!("dc-{i:02}_g-1"), "@odata.type": "#microsoft.graph.deviceConfigurationAssignment", "target": group_target("g-1")["target"]}]
            })
        })
        .collect();
    write(root, &format!("beta/{DC}.json"), &json!({ "value": dcs }));
    let settings: Vec<Value> = (0..30)
        .map(|i| {
            json!({"id": i.to_string(), "settingInstance": {
                "@odata.type": "#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance",
                "settingDefinitionId": format!("device_vendor_msft_policy_config_setting{i}")
            }})
        })
        .collect();
    write(
        root,
        &format!("beta/{SC}.json"),
        &json!({"value": [{
            "@odata.type": "#microsoft.graph.deviceManagementConfigurationPolicy",
            "id": "sc-1", "name": "Baseline", "description": "", "platforms": "windows10", "technologies": "mdm",
            "roleScopeTagIds": ["0"], "settingCount": 30, "isAssigned": false,
            "createdDateTime": "2026-01-01T00:00:00Z", "lastModifiedDateTime": "2026-01-01T00:00:00Z",
            "settings": settings, "assignments": []
        }]}),
    );
    write(
        root,
        &format!("beta/{CP}.json"),
        &json!({"value": [{
            "@odata.type": "#microsoft.graph.windows10CompliancePolicy",
            "id": "cp-1", "displayName": "Compliance", "version": 1, "passwordRequired": true,
            "scheduledActionsForRule": [{
                "@odata.type": "#microsoft.graph.deviceComplianceScheduledActionForRule",
                "id": "r-1", "ruleName": "PasswordRequired",
                "scheduledActionConfigurations": [{"@odata.type": "#microsoft.graph.deviceComplianceActionItem", "id": "c-1", "actionType": "block", "gracePeriodHours": 0}]
            }],
            "assignments": []
        }]}),
    );
    write(
        root,
        &format!("beta/{GP}.json"),
        &json!({"value": [{
            "@odata.type": "#microsoft.graph.groupPolicyConfiguration",
            "id": "gp-1", "displayName": "Edge", "assignments": [],
            "definitionValues": [{
                "@odata.type": "#microsoft.graph.groupPolicyDefinitionValue",
                "id": "dv-1", "enabled": true, "configurationType": "policy",
                "definition": {"@odata.type": "#microsoft.graph.groupPolicyDefinition", "id": "def-home", "displayName": "Configure the home page"},
                "presentationValues": [{
                    "@odata.type": "#microsoft.graph.groupPolicyPresentationValueText",
                    "id": "pv-1", "value": "https://alpha.example",
                    "presentation": {"@odata.type": "#microsoft.graph.groupPolicyPresentationTextBox", "id": "pres-home", "label": "Home page"}
                }]
            }]
        }]}),
    );
    write(
        root,
        &format!("beta/{PS}.json"),
        &json!({"value": [{
            "@odata.type": "#microsoft.graph.deviceManagementScript",
            "id": "ps-1", "displayName": "Set time zone", "fileName": "tz.ps1", "runAsAccount": "system",
            "scriptContent": STANDARD.encode("Set-TimeZone -Id 'UTC'"), "assignments": []
        }]}),
    );
    write(
        root,
        &format!("beta/{APPS}.json"),
        &json!({"value": [{"@odata.type": "#microsoft.graph.winGetApp", "id": "app-1", "displayName": "Edge", "publishingState": "published", "assignments": []}]}),
    );
    write(
        root,
        "beta/deviceAppManagement/managedAppPolicies.json",
        &json!({"value": [
            {"@odata.type": "#microsoft.graph.iosManagedAppProtection", "id": "ap-ios", "displayName": "iOS MAM", "isAssigned": false,
             "apps": [{"@odata.type": "#microsoft.graph.managedMobileApp", "id": "com.microsoft.outlook.ios",
                       "mobileAppIdentifier": {"@odata.type": "#microsoft.graph.iosMobileAppIdentifier", "bundleId": "com.microsoft.outlook"}}],
             "assignments": []},
            {"@odata.type": "#microsoft.graph.androidManagedAppProtection", "id": "ap-and", "displayName": "Android MAM", "apps": [], "assignments": []}
        ]}),
    );
    write(
        root,
        &format!("beta/{FILTERS}.json"),
        &json!({"value": [{"@odata.type": "#microsoft.graph.deviceAndAppManagementAssignmentFilter", "id": "f-1", "displayName": "Corporate", "platform": "windows10AndLater", "rule": "(device.deviceOwnership -eq \"Corporate\")"}]}),
    );
    write(
        root,
        "beta/groups.json",
        &json!({"value": [
            {"@odata.type": "#microsoft.graph.group", "id": "g-1", "displayName": "All Staff"},
            {"@odata.type": "#microsoft.graph.group", "id": "g-2", "displayName": "O'Brien Team"},
            {"@odata.type": "#microsoft.graph.group", "id": "g-3", "displayName": "Finance"}
        ]}),
    );
}

/// Tenant B: reads device configuration only; its administrative template
/// brings a definition tenant A does not use.
fn tenant_b(root: &Path) {
    write(
        root,
        "tenant.json",
        &json!({"id": B, "displayName": "Beta", "domain": "beta.onmicrosoft.com",
                "grantedPermissions": ["DeviceManagementConfiguration.Read.All"]}),
    );
    write(
        root,
        &format!("beta/{DC}.json"),
        &json!({"value": [{"@odata.type": "#microsoft.graph.windows10GeneralConfiguration", "id": "b-dc-1", "displayName": "B config", "version": 1}]}),
    );
    write(
        root,
        &format!("beta/{GP}.json"),
        &json!({"value": [{
            "@odata.type": "#microsoft.graph.groupPolicyConfiguration", "id": "b-gp-1", "displayName": "Search",
            "definitionValues": [{
                "@odata.type": "#microsoft.graph.groupPolicyDefinitionValue", "id": "b-dv-1", "enabled": true,
                "definition": {"@odata.type": "#microsoft.graph.groupPolicyDefinition", "id": "def-search", "displayName": "Default search provider"},
                "presentationValues": [{
                    "@odata.type": "#microsoft.graph.groupPolicyPresentationValueText", "id": "b-pv-1", "value": "Bing",
                    "presentation": {"@odata.type": "#microsoft.graph.groupPolicyPresentationTextBox", "id": "pres-search", "label": "Provider"}
                }]
            }]
        }]}),
    );
}

struct Env {
    mock: MockGraph,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Serves tenants A and B; `faults_a` becomes A's `faults.json`.
async fn serve(tune: impl FnOnce(MockConfig) -> MockConfig, faults_a: Option<Value>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("alpha"), dir.path().join("beta"));
    tenant_a(&a);
    tenant_b(&b);
    if let Some(f) = faults_a {
        write(&a, "faults.json", &f);
    }
    let cfg = tune(MockConfig::new().tenant(A, &a).tenant(B, &b));
    let mock = start(cfg, loopback()).await.unwrap();
    Env {
        mock,
        http: reqwest::Client::new(),
        dir,
    }
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn message(&self) -> String {
        self.body["error"]["message"].as_str().unwrap_or_default().to_owned()
    }
    fn code(&self) -> String {
        self.body["error"]["code"].as_str().unwrap_or_default().to_owned()
    }
}

impl Env {
    async fn token_request(&self, tenant: &str, form: &[(&str, &str)]) -> Answer {
        let r = self
            .http
            .post(self.mock.token_url(tenant))
            .form(form)
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    async fn token(&self, tenant: &str) -> String {
        let a = self
            .token_request(
                tenant,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "app-1"),
                    ("client_secret", "s3cret"),
                    ("scope", "https://graph.microsoft.com/.default"),
                ],
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["access_token"].as_str().unwrap().to_owned()
    }

    /// `path` relative to `/beta/`, or an absolute URL (a next link).
    async fn call(&self, method: Method, token: &str, path: &str, body: Option<Value>) -> Answer {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}/{path}", self.mock.graph_url())
        };
        let mut req = self.http.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req.send().await.unwrap()).await
    }

    async fn get(&self, token: &str, path: &str) -> Answer {
        self.call(Method::GET, token, path, None).await
    }

    async fn stats(&self) -> Stats {
        let r = self
            .http
            .get(format!("{}/_mock/stats", self.mock.base_url()))
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    /// Every page of a list, following next links.
    async fn list_all(&self, token: &str, path: &str) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut pages = 0;
        let mut next = Some(path.to_owned());
        while let Some(p) = next {
            let a = self.get(token, &p).await;
            assert_eq!(a.status, 200, "{p}: {}", a.body);
            assert!(a.body["@odata.context"].as_str().unwrap().contains("$metadata#"));
            pages += 1;
            items.extend(a.body["value"].as_array().unwrap().iter().cloned());
            next = a.body["@odata.nextLink"].as_str().map(str::to_owned);
        }
        (items, pages)
    }
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Answer { status, headers, body }
}

fn jwt_payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn assert_graph_error(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.code(), code, "{}", a.body);
    let inner = &a.body["error"]["innerError"];
    assert!(
        inner["request-id"].is_string() && inner["date"].is_string(),
        "{}",
        a.body
    );
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
async fn token_endpoint_answers_like_entra() {
    let env = serve(|c| c.client_secret("s3cret"), None).await;
    let good = [
        ("grant_type", "client_credentials"),
        ("client_id", "app-1"),
        ("client_secret", "s3cret"),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    // By id and by domain.
    for tenant in [A, A_DOMAIN] {
        let a = env.token_request(tenant, &good).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["token_type"], "Bearer");
        assert_eq!(a.body["expires_in"], 3600);
        assert_eq!(a.body["ext_expires_in"], 3600);
        let claims = jwt_payload(a.body["access_token"].as_str().unwrap());
        assert_eq!(claims["tid"], A);
        assert_eq!(claims["appid"], "app-1");
        assert_eq!(claims["aud"], "https://graph.microsoft.com");
        assert_eq!(claims["roles"].as_array().unwrap().len(), 3);
        assert!(claims["exp"].as_u64().unwrap() >= claims["iat"].as_u64().unwrap() + 3600);
    }
    let mut bad_secret = good;
    bad_secret[2].1 = "wrong";
    let a = env.token_request(A, &bad_secret).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body["error"], "invalid_client");
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215:"),
        "{}",
        a.body
    );
    assert!(!a.body.to_string().contains("wrong"), "the secret sent is never echoed");

    let a = env.token_request("33333333-3333-4333-8333-333333333333", &good).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["error"], "invalid_request");
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS90002:")
    );

    let mut wrong_grant = good;
    wrong_grant[0].1 = "password";
    let a = env.token_request(A, &wrong_grant).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );

    let mut wrong_scope = good;
    wrong_scope[3].1 = "https://graph.microsoft.com/User.Read";
    let a = env.token_request(A, &wrong_scope).await;
    assert_eq!((a.status, a.body["error"].as_str()), (400, Some("invalid_scope")));

    let a = env.token_request(A, &good[..3]).await;
    assert_eq!(a.status, 400);
    assert!(a.body["error_description"].as_str().unwrap().contains("'scope'"));

    let no_secret = [good[0], good[1], good[3]];
    let a = env.token_request(A, &no_secret).await;
    assert_eq!((a.status, a.body["error"].as_str()), (401, Some("invalid_client")));

    // Graph refuses a missing, malformed or foreign token.
    let r = env
        .http
        .get(format!("{}/{DC}", env.mock.graph_url()))
        .send()
        .await
        .unwrap();
    let a = answer(r).await;
    assert_graph_error(&a, 401, "InvalidAuthenticationToken");
    assert!(a.headers.contains_key("www-authenticate"));
    let a = env.get("not-a-jwt", DC).await;
    assert_graph_error(&a, 401, "InvalidAuthenticationToken");
    let forged = format!(
        "{}.{}.x",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(format!(r#"{{"tid":"{A}"}}"#))
    );
    assert_graph_error(&env.get(&forged, DC).await, 401, "InvalidAuthenticationToken");
    let t = env.token(A).await;
    assert_eq!(env.get(&t, DC).await.status, 200);
}

#[tokio::test]
async fn tokens_expire_after_their_lifetime_and_select_their_tenant() {
    let env = serve(|c| c.token_lifetime(Duration::from_secs(1)), None).await;
    let ta = env.token(A).await;
    let tb = env.token(B).await;
    // A token reads its own tenant only.
    assert_eq!(env.get(&ta, &format!("{DC}/dc-01")).await.status, 200);
    assert_graph_error(&env.get(&tb, &format!("{DC}/dc-01")).await, 404, "ResourceNotFound");
    assert_eq!(env.get(&tb, &format!("{DC}/b-dc-1")).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let a = env.get(&ta, DC).await;
    assert_graph_error(&a, 401, "InvalidAuthenticationToken");
    assert_eq!(a.message(), "Lifetime validation failed, the token is expired.");
    let fresh = env.token(A).await;
    assert_eq!(env.get(&fresh, DC).await.status, 200);
}

#[tokio::test]
async fn lists_page_with_an_opaque_skiptoken() {
    let env = serve(|c| c, None).await;
    let t = env.token(A).await;
    let first = env.get(&t, DC).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["value"].as_array().unwrap().len(), 25);
    let next = first.body["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{}/beta/{DC}?", env.mock.base_url())),
        "{next}"
    );
    assert!(next.contains("$skiptoken="), "{next}");
    assert!(!next.contains("skip=25") && !next.contains("$skip="), "opaque: {next}");
    assert!(
        first.body["value"][0].get("assignments").is_none(),
        "a list leaves navigation out"
    );
    assert!(
        first.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["@odata.type"].is_string())
    );

    let (items, pages) = env.list_all(&t, DC).await;
    assert_eq!((items.len(), pages), (60, 3));
    let mut ids: Vec<&str> = items.iter().map(|v| v["id"].as_str().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 60);

    // $top lowers the page size and survives into the next link.
    let (items, pages) = env.list_all(&t, &format!("{DC}?$top=10")).await;
    assert_eq!((items.len(), pages), (60, 6));

    // A skiptoken that is not one of ours, or belongs to another list.
    let bad = env.get(&t, &format!("{DC}?$skiptoken=bm9wZQ")).await;
    assert_graph_error(&bad, 400, "BadRequest");
    assert!(bad.message().contains("$skiptoken"), "{}", bad.message());
    let token = next.split("$skiptoken=").nth(1).unwrap();
    assert_graph_error(
        &env.get(&t, &format!("{CP}?$skiptoken={token}")).await,
        400,
        "BadRequest",
    );
    // Unsupported options are refused, not ignored.
    assert_graph_error(
        &env.get(&t, &format!("{DC}?$orderby=displayName")).await,
        400,
        "BadRequest",
    );
    // Only /beta is served.
    let r = env
        .http
        .get(format!("{}/v1.0/{DC}", env.mock.base_url()))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn settings_page_at_the_page_size_and_expand_reads_them_whole() {
    let env = serve(|c| c, None).await;
    let t = env.token(A).await;
    let (settings, pages) = env.list_all(&t, &format!("{SC}/sc-1/settings")).await;
    assert_eq!((settings.len(), pages), (30, 2));
    let item = env.get(&t, &format!("{SC}/sc-1")).await;
    assert_eq!(item.status, 200);
    assert!(item.body.get("settings").is_none(), "navigation only through $expand");
    assert_eq!(item.body["settingCount"], 30);
    assert!(item.body["@odata.context"].as_str().unwrap().ends_with("/$entity"));
    let expanded = env.get(&t, &format!("{SC}/sc-1?$expand=settings")).await;
    assert_eq!(expanded.body["settings"].as_array().unwrap().len(), 30);
    // A smaller page size pages settings the same way.
    let env = serve(|c| c.page_size(7), None).await;
    let t = env.token(A).await;
    let (settings, pages) = env.list_all(&t, &format!("{SC}/sc-1/settings")).await;
    assert_eq!((settings.len(), pages), (30, 5));
}

#[tokio::test]
async fn reads_shape_navigation_like_graph() {
    let env = serve(|c| c, None).await;
    let t = env.token(A).await;
    // Script content: on the item, not in the list.
    let list = env.get(&t, PS).await;
    assert!(list.body["value"][0].get("scriptContent").is_none());
    let item = env.get(&t, &format!("{PS}/ps-1")).await;
    assert!(item.body["scriptContent"].is_string());
    assert!(item.body.get("assignments").is_none());
    // Compliance: scheduled actions only when expanded, configurations only
    // when expanded below them.
    let plain = env.get(&t, &format!("{CP}/cp-1")).await;
    assert!(plain.body.get("scheduledActionsForRule").is_none());
    let one = env.get(&t, &format!("{CP}/cp-1?$expand=scheduledActionsForRule")).await;
    assert!(
        one.body["scheduledActionsForRule"][0]
            .get("scheduledActionConfigurations")
            .is_none()
    );
    let both = env
        .get(
            &t,
            &format!("{CP}/cp-1?$expand=scheduledActionsForRule($expand=scheduledActionConfigurations)"),
        )
        .await;
    assert_eq!(
        both.body["scheduledActionsForRule"][0]["scheduledActionConfigurations"][0]["actionType"],
        "block"
    );
    // Administrative templates, three levels.
    let dvs = env
        .get(&t, &format!("{GP}/gp-1/definitionValues?$expand=definition"))
        .await;
    assert_eq!(dvs.status, 200, "{}", dvs.body);
    assert_eq!(dvs.body["value"][0]["definition"]["id"], "def-home");
    assert!(dvs.body["value"][0].get("presentationValues").is_none());
    let bare = env.get(&t, &format!("{GP}/gp-1/definitionValues")).await;
    assert!(bare.body["value"][0].get("definition").is_none());
    let pvs = env
        .get(
            &t,
            &format!("{GP}/gp-1/definitionValues/dv-1/presentationValues?$expand=presentation"),
        )
        .await;
    assert_eq!(pvs.body["value"][0]["presentation"]["id"], "pres-home");
    assert_eq!(pvs.body["value"][0]["value"], "https://alpha.example");
    // App protection: the shared list holds every platform; apps and
    // assignments through the platform collection only.
    let (all, _) = env.list_all(&t, "deviceAppManagement/managedAppPolicies").await;
    assert_eq!(all.len(), 2);
    let (ios, _) = env.list_all(&t, "deviceAppManagement/iosManagedAppProtections").await;
    assert_eq!(ios.len(), 1);
    let apps = env
        .get(&t, "deviceAppManagement/iosManagedAppProtections/ap-ios/apps")
        .await;
    assert_eq!(apps.body["value"][0]["id"], "com.microsoft.outlook.ios");
    let wrong_platform = env
        .get(&t, "deviceAppManagement/androidManagedAppProtections/ap-ios")
        .await;
    assert_graph_error(&wrong_platform, 404, "ResourceNotFound");
    let base = env.get(&t, "deviceAppManagement/managedAppPolicies/ap-ios/apps").await;
    assert_graph_error(&base, 400, "BadRequest");
    assert!(base.message().contains("'apps'"));
    // Assignments.
    let asg = env.get(&t, &format!("{DC}/dc-03/assignments")).await;
    assert_eq!(asg.body["value"][0]["target"]["groupId"], "g-1");
    let exp = env.get(&t, &format!("{DC}/dc-03?$expand=assignments")).await;
    assert_eq!(exp.body["assignments"].as_array().unwrap().len(), 1);
    // Unknown things.
    assert_graph_error(&env.get(&t, &format!("{DC}/nope")).await, 404, "ResourceNotFound");
    let a = env.get(&t, &format!("{DC}/dc-03?$expand=settings")).await;
    assert_graph_error(&a, 400, "BadRequest");
    assert!(a.message().contains("'settings'"), "{}", a.message());
    assert_graph_error(&env.get(&t, "deviceManagement/madeUp").await, 400, "BadRequest");
    // $select keeps id and @odata.type.
    let sel = env.get(&t, &format!("{FILTERS}/f-1?$select=displayName")).await;
    let keys: Vec<&String> = sel.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["@odata.context", "@odata.type", "id", "displayName"]);
}

#[tokio::test]
async fn groups_filter_by_display_name_and_are_read_only() {
    let env = serve(|c| c, None).await;
    let t = env.token(A).await;
    let a = env
        .http
        .get(format!("{}/groups", env.mock.graph_url()))
        .query(&[("$filter", "displayName eq 'O''Brien Team'")])
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let a = answer(a).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let found = a.body["value"].as_array().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], "g-2");
    let a = env.get(&t, "groups?$filter=displayName%20eq%20'all%20staff'").await;
    assert_eq!(a.body["value"][0]["id"], "g-1", "directory comparisons ignore case");
    let a = env.get(&t, "groups?$filter=displayName%20eq%20'Nobody'").await;
    assert_eq!(a.body["value"].as_array().unwrap().len(), 0);
    for bad in ["startswith(displayName,'A')", "displayName eq 'O'Brien'", "mail eq 'x'"] {
        let a = env
            .http
            .get(format!("{}/groups", env.mock.graph_url()))
            .query(&[("$filter", bad)])
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        let a = answer(a).await;
        assert_graph_error(&a, 400, "Request_UnsupportedQuery");
    }
    let a = env
        .call(
            Method::POST,
            &t,
            "groups",
            Some(json!({"@odata.type": "#microsoft.graph.group", "displayName": "X"})),
        )
        .await;
    assert_graph_error(&a, 403, "Authorization_RequestDenied");
    let a = env.call(Method::DELETE, &t, "groups/g-1", None).await;
    assert_graph_error(&a, 403, "Authorization_RequestDenied");
}

#[tokio::test]
async fn writes_refuse_read_only_fields_and_malformed_bodies() {
    let env = serve(|c| c, None).await;
    let t = env.token(A).await;
    let base = json!({"@odata.type": "#microsoft.graph.windows10GeneralConfiguration", "displayName": "New"});
    let mut with_id = base.clone();
    with_id["id"] = json!("x");
    let a = env.call(Method::POST, &t, DC, Some(with_id)).await;
    assert_graph_error(&a, 400, "BadRequest");
    assert!(a.message().contains("'id'"), "{}", a.message());
    let mut nested = base.clone();
    nested["omaSettings"] = json!([{"displayName": "x", "createdDateTime": "2026-01-01T00:00:00Z"}]);
    let a = env.call(Method::POST, &t, DC, Some(nested)).await;
    assert!(
        a.message().contains("omaSettings[0].createdDateTime"),
        "{}",
        a.message()
    );
    let a = env
        .call(
            Method::PATCH,
            &t,
            &format!("{DC}/dc-01"),
            Some(json!({"displayName": "x", "assignments@odata.navigationLink": "y"})),
        )
        .await;
    assert_graph_error(&a, 400, "BadRequest");
    assert!(
        a.message().contains("assignments@odata.navigationLink"),
        "{}",
        a.message()
    );
    // Malformed JSON.
    let r = env
        .http
        .post(format!("{}/{DC}", env.mock.graph_url()))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body("{\"displayName\": ")
        .send()
        .await
        .unwrap();
    assert_graph_error(&answer(r).await, 400, "BadRequest");
    // @odata.type: required, and one the collection holds.
    let a = env.call(Method::POST, &t, DC, Some(json!({"displayName": "x"}))).await;
    assert!(a.status == 400 && a.message().contains("@odata.type"), "{}", a.body);
    let a = env
        .call(
            Method::POST,
            &t,
            DC,
            Some(json!({"@odata.type": "#microsoft.graph.windows10CompliancePolicy", "displayName": "x"})),
        )
        .await;
    assert!(
        a.status == 400 && a.message().contains("windows10CompliancePolicy"),
        "{}",
        a.body
    );
    // Compliance needs its scheduled actions.
    let cp = json!({"@odata.type": "#microsoft.graph.windows10CompliancePolicy", "displayName": "C2", "passwordRequired": true});
    let a = env.call(Method::POST, &t, CP, Some(cp.clone())).await;
    assert!(
        a.status == 400 && a.message().contains("scheduledActionsForRule"),
        "{}",
        a.body
    );
    let mut cp_ok = cp;
    cp_ok["scheduledActionsForRule"] = json!([{"ruleName": "PasswordRequired", "scheduledActionConfigurations": [{"actionType": "block", "gracePeriodHours": 0}]}]);
    let a = env.call(Method::POST, &t, CP, Some(cp_ok)).await;
    assert_eq!(a.status, 201, "{}", a.body);
    // Nothing was stored by the refused writes; the good ones are complete.
    assert_eq!(env.mock.objects(A, ObjectType::DeviceConfiguration).unwrap().len(), 60);
    let created = env.call(Method::POST, &t, DC, Some(base)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::try_parse(&id).is_ok(), "{id}");
    assert_eq!(
        created.body["@odata.type"],
        "#microsoft.graph.windows10GeneralConfiguration"
    );
    assert_eq!(created.body["version"], 1);
    assert!(created.body["createdDateTime"].is_string() && created.body["lastModifiedDateTime"].is_string());
    let read = env.get(&t, &format!("{DC}/{id}")).await;
    assert_eq!(read.body["displayName"], "New");
    assert_eq!(
        env.get(&t, &format!("{DC}/{id}/assignments")).await.body["value"],
        json!([])
    );
    // Script content must be base64.
    let a = env
        .call(
            Method::POST,
            &t,
            PS,
            Some(json!({"@odata.type": "#microsoft.graph.deviceManagementScript", "displayName": "s", "scriptContent": "not base64!"})),
        )
        .await;
    assert!(a.status == 400 && a.message().contains("scriptContent"), "{}", a.body);
    // App protection is written through its platform collection.
    let ap = json!({"@odata.type": "#microsoft.graph.iosManagedAppProtection", "displayName": "New MAM"});
    let a = env
        .call(
            Method::POST,
            &t,
            "deviceAppManagement/managedAppPolicies",
            Some(ap.clone()),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let a = env
        .call(
            Method::POST,
            &t,
            "deviceAppManagement/iosManagedAppProtections",
            Some(ap),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    // The folder is never written.
    let root = env.dir.path().join("alpha");
    let on_disk: Value = serde_json::from_slice(&std::fs::read(root.join(format!("beta/{DC}.json"))).unwrap()).unwrap();
    assert_eq!(on_disk["value"].as_array().unwrap().len(), 60);
    assert!(!env.dir.path().join("alpha.overlay").exists());
}

#[tokio::test]
async fn put_replaces_a_settings_catalog_policy_and_patch_merges_elsewhere() {
    let env = serve(|c| c, None).await;
    let t = env.token(A).await;
    let sc = format!("{SC}/sc-1");
    let a = env
        .call(Method::PATCH, &t, &sc, Some(json!({"description": "x"})))
        .await;
    assert_eq!(a.status, 405, "{}", a.body);
    let a = env
        .call(
            Method::PUT,
            &t,
            &format!("{DC}/dc-01"),
            Some(json!({"displayName": "x"})),
        )
        .await;
    assert_eq!(a.status, 405, "{}", a.body);
    let body = json!({
        "name": "Baseline v2", "platforms": "windows10", "technologies": "mdm", "roleScopeTagIds": null,
        "settings": [{"settingInstance": {"@odata.type": "#microsoft.graph.deviceManagementConfigurationSimpleSettingInstance", "settingDefinitionId": "a"}}]
    });
    let a = env.call(Method::PUT, &t, &sc, Some(body.clone())).await;
    assert_graph_error(&a, 400, "BadRequest");
    assert!(a.message().contains("roleScopeTagIds"));
    let mut good = body;
    good["roleScopeTagIds"] = json!(["0"]);
    assert_eq!(env.call(Method::PUT, &t, &sc, Some(good)).await.status, 204);
    let after = env.get(&t, &format!("{sc}?$expand=settings")).await;
    assert_eq!(after.body["name"], "Baseline v2");
    assert_eq!(after.body["settingCount"], 1);
    assert_eq!(after.body["settings"].as_array().unwrap().len(), 1);
    assert!(
        after.body.get("description").is_none(),
        "PUT replaces: what was not sent is gone"
    );
    assert_eq!(after.body["createdDateTime"], "2026-01-01T00:00:00Z");
    assert_ne!(after.body["lastModifiedDateTime"], "2026-01-01T00:00:00Z");
    // PATCH changes what it sends and counts the version up.
    let dc = format!("{DC}/dc-01");
    assert_eq!(
        env.call(Method::PATCH, &t, &dc, Some(json!({"displayName": "Renamed"})))
            .await
            .status,
        204
    );
    let after = env.get(&t, &dc).await;
    assert_eq!(after.body["displayName"], "Renamed");
    assert_eq!(after.body["passwordRequired"], true);
    assert_eq!(after.body["version"], 2);
    let a = env
        .call(
            Method::PATCH,
            &t,
            &dc,
            Some(json!({"@odata.type": "#microsoft.graph.iosGeneralDeviceConfiguration"})),
        )
        .await;
    assert_eq!(a.status, 400, "the type of an object does not change");
    let a = env
        .call(
            Method::PATCH,
            &t,
            &format!("{CP}/cp-1"),
            Some(json!({"scheduledActionsForRule": []})),
        )
        .await;
    assert!(
        a.status == 400 && a.message().contains("scheduleActionsForRules"),
        "{}",
        a.body
    );
    // DELETE.
    assert_eq!(env.call(Method::DELETE, &t, &dc, None).await.status, 204);
    assert_eq!(env.get(&t, &dc).await.status, 404);
    assert_eq!(env.call(Method::DELETE, &t, &dc, None).await.status, 404);
}

#[tokio::test]
async fn assign_replaces_the_whole_list_and_an_empty_list_clears_it() {
    let env = serve(|c| c, None).await;
    let t = env.token(A).await;
    let assign = format!("{DC}/dc-05/assign");
    let list = format!("{DC}/dc-05/assignments");
    let two = json!({"assignments": [group_target("g-2"), {"target": {"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget"}}]});
    let a = env.call(Method::POST, &t, &assign, Some(two)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let now = env.get(&t, &list).await.body["value"].as_array().unwrap().clone();
    assert_eq!(now.len(), 2, "the fixture's assignment to g-1 was replaced");
    assert!(now.iter().all(|a| a["id"].is_string() && a["@odata.type"].is_string()));
    assert_eq!(now[0]["target"]["groupId"], "g-2");
    let one = json!({"assignments": [group_target("g-3")]});
    env.call(Method::POST, &t, &assign, Some(one)).await;
    assert_eq!(env.get(&t, &list).await.body["value"].as_array().unwrap().len(), 1);
    env.call(Method::POST, &t, &assign, Some(json!({"assignments": []})))
        .await;
    assert_eq!(env.get(&t, &list).await.body["value"], json!([]));
    // The wrapper key is the type's.
    let a = env
        .call(
            Method::POST,
            &t,
            &format!("{PS}/ps-1/assign"),
            Some(json!({"assignments": [group_target("g-1")]})),
        )
        .await;
    assert_graph_error(&a, 400, "BadRequest");
    assert!(
        a.message().contains("deviceManagementScriptAssignments"),
        "{}",
        a.message()
    );
    let a = env
        .call(
            Method::POST,
            &t,
            &format!("{PS}/ps-1/assign"),
            Some(json!({"deviceManagementScriptAssignments": [group_target("g-1")]})),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(
        env.get(&t, &format!("{PS}/ps-1/assignments")).await.body["value"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // An assignment read back and sent as is carries its id: refused.
    let mut dirty = group_target("g-1");
    dirty["id"] = json!("old");
    let a = env
        .call(Method::POST, &t, &assign, Some(json!({"assignments": [dirty]})))
        .await;
    assert!(
        a.status == 400 && a.message().contains("assignments[0].id"),
        "{}",
        a.body
    );
    let a = env
        .call(
            Method::POST,
            &t,
            &assign,
            Some(json!({"assignments": [{"target": {"@odata.type": "#microsoft.graph.madeUpTarget"}}]})),
        )
        .await;
    assert_eq!(a.status, 400);
    // Mobile apps need an intent; app protection assigns through its platform.
    let a = env
        .call(
            Method::POST,
            &t,
            &format!("{APPS}/app-1/assign"),
            Some(json!({"mobileAppAssignments": [group_target("g-1")]})),
        )
        .await;
    assert!(a.status == 400 && a.message().contains("intent"), "{}", a.body);
    let mut with_intent = group_target("g-1");
    with_intent["intent"] = json!("required");
    let a = env
        .call(
            Method::POST,
            &t,
            &format!("{APPS}/app-1/assign"),
            Some(json!({"mobileAppAssignments": [with_intent]})),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    let a = env
        .call(
            Method::POST,
            &t,
            "deviceAppManagement/iosManagedAppProtections/ap-ios/assign",
            Some(json!({"assignments": [group_target("g-1")]})),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(
        env.mock.object(A, ObjectType::AppProtectionPolicy, "ap-ios").unwrap()["isAssigned"],
        true
    );
}

#[tokio::test]
async fn actions_replace_scheduled_actions_apps_and_definition_values() {
    let env = serve(|c| c, None).await;
    let t = env.token(A).await;
    let a = env
        .call(
            Method::POST,
            &t,
            &format!("{CP}/cp-1/scheduleActionsForRules"),
            Some(json!({"deviceComplianceScheduledActionForRules": [
                {"ruleName": "PasswordRequired", "scheduledActionConfigurations": [
                    {"actionType": "block", "gracePeriodHours": 12}, {"actionType": "notification", "gracePeriodHours": 24}]}]})),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    let cp = env
        .get(
            &t,
            &format!("{CP}/cp-1?$expand=scheduledActionsForRule($expand=scheduledActionConfigurations)"),
        )
        .await;
    let configs = cp.body["scheduledActionsForRule"][0]["scheduledActionConfigurations"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(configs.len(), 2);
    assert_eq!(configs[0]["gracePeriodHours"], 12);
    let a = env
        .call(
            Method::POST,
            &t,
            &format!("{CP}/cp-1/scheduleActionsForRules"),
            Some(json!({"rules": []})),
        )
        .await;
    assert_eq!(a.status, 400);

    let ios = "deviceAppManagement/iosManagedAppProtections/ap-ios";
    let a = env
        .call(
            Method::POST,
            &t,
            &format!("{ios}/targetApps"),
            Some(json!({"appGroupType": "selectedPublicApps", "apps": [
                {"mobileAppIdentifier": {"@odata.type": "#microsoft.graph.iosMobileAppIdentifier", "bundleId": "com.microsoft.teams"}},
                {"mobileAppIdentifier": {"@odata.type": "#microsoft.graph.iosMobileAppIdentifier", "bundleId": "com.microsoft.skydrive"}}]})),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    let apps = env.get(&t, &format!("{ios}/apps")).await.body["value"]
        .as_array()
        .unwrap()
        .clone();
    let ids: Vec<&str> = apps.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["com.microsoft.teams.ios", "com.microsoft.skydrive.ios"]);

    // Definition values: bind to the definition catalog (tenant B's
    // definition is known too), update by id, delete by id.
    let upd = json!({
        "added": [{
            "enabled": true,
            "definition@odata.bind": "https://graph.microsoft.com/beta/deviceManagement/groupPolicyDefinitions('def-search')",
            "presentationValues": [{
                "@odata.type": "#microsoft.graph.groupPolicyPresentationValueText", "value": "DuckDuckGo",
                "presentation@odata.bind": "https://graph.microsoft.com/beta/deviceManagement/groupPolicyDefinitions('def-search')/presentations('pres-search')"
            }]
        }],
        "updated": [{"id": "dv-1", "enabled": true, "presentationValues": [{"id": "pv-1", "value": "https://new.example"}]}],
        "deletedIds": []
    });
    let a = env
        .call(
            Method::POST,
            &t,
            &format!("{GP}/gp-1/updateDefinitionValues"),
            Some(upd),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    let dvs = env
        .get(
            &t,
            &format!("{GP}/gp-1/definitionValues?$expand=definition,presentationValues($expand=presentation)"),
        )
        .await;
    let dvs = dvs.body["value"].as_array().unwrap().clone();
    assert_eq!(dvs.len(), 2);
    assert_eq!(dvs[0]["presentationValues"][0]["value"], "https://new.example");
    assert_eq!(dvs[1]["definition"]["id"], "def-search");
    assert_eq!(dvs[1]["presentationValues"][0]["presentation"]["id"], "pres-search");
    let added_id = dvs[1]["id"].as_str().unwrap().to_owned();
    // Unknown definition: refused, nothing changed.
    let a = env
        .call(
            Method::POST,
            &t,
            &format!("{GP}/gp-1/updateDefinitionValues"),
            Some(json!({"deletedIds": [added_id], "added": [{"enabled": true, "definition@odata.bind": "https://graph.microsoft.com/beta/deviceManagement/groupPolicyDefinitions('nope')"}]})),
        )
        .await;
    assert!(a.status == 400 && a.message().contains("nope"), "{}", a.body);
    assert_eq!(
        env.get(&t, &format!("{GP}/gp-1/definitionValues")).await.body["value"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let a = env
        .call(
            Method::POST,
            &t,
            &format!("{GP}/gp-1/updateDefinitionValues"),
            Some(json!({"deletedIds": [added_id]})),
        )
        .await;
    assert_eq!(a.status, 204);
    // One value at a time works too.
    let a = env
        .call(
            Method::POST,
            &t,
            &format!("{GP}/gp-1/definitionValues"),
            Some(json!({"enabled": false, "definition@odata.bind": "https://graph.microsoft.com/beta/deviceManagement/groupPolicyDefinitions('def-search')"})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert!(a.body["id"].is_string() && a.body.get("definition").is_none());
    let a = env
        .call(
            Method::POST,
            &t,
            &format!("{GP}/gp-1/definitionValues"),
            Some(json!({"enabled": true, "definition@odata.bind": "https://graph.microsoft.com/beta/deviceManagement/groupPolicyDefinitions('def-search')"})),
        )
        .await;
    assert_eq!(a.status, 400, "a definition is set once per policy");
    // An admin template is created empty, its values written afterwards.
    let a = env
        .call(
            Method::POST,
            &t,
            GP,
            Some(json!({"@odata.type": "#microsoft.graph.groupPolicyConfiguration", "displayName": "x", "definitionValues": []})),
        )
        .await;
    assert!(
        a.status == 400 && a.message().contains("definitionValues"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn batch_answers_each_item_and_caps_at_twenty() {
    let env = serve(|c| c, None).await;
    let t = env.token(A).await;
    env.mock
        .add_faults(
            A,
            vec![FaultRule {
                retry_after: Some("0.5".into()),
                times: Some(1),
                ..fault(FILTERS, FaultKind::Throttle)
            }],
        )
        .unwrap();
    let batch = format!("{}/$batch", env.mock.graph_url());
    let body = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/deviceManagement/deviceConfigurations/dc-01"},
        {"id": "2", "method": "GET", "url": "deviceManagement/deviceConfigurations/missing"},
        {"id": "3", "method": "GET", "url": "/deviceManagement/assignmentFilters/f-1"},
        {"id": "4", "method": "PATCH", "url": "/deviceManagement/deviceConfigurations/dc-02",
         "headers": {"Content-Type": "application/json"}, "body": {"id": "dc-02", "displayName": "x"}},
        {"id": "5", "method": "PATCH", "url": "/deviceManagement/deviceConfigurations/dc-02",
         "headers": {"Content-Type": "application/json"}, "body": {"displayName": "Batched"}},
        {"id": "6", "method": "GET", "url": "/deviceManagement/deviceConfigurations/missing/assignments", "dependsOn": ["2"]},
        {"id": "7", "method": "GET", "url": "/groups?$filter=displayName eq 'Finance'"}
    ]});
    let r = env.http.post(&batch).bearer_auth(&t).json(&body).send().await.unwrap();
    let a = answer(r).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let responses = a.body["responses"].as_array().unwrap();
    let by_id = |id: &str| responses.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(by_id("1")["status"], 200);
    assert_eq!(by_id("1")["body"]["id"], "dc-01");
    assert_eq!(by_id("2")["status"], 404);
    assert_eq!(by_id("2")["body"]["error"]["code"], "ResourceNotFound");
    assert_eq!(by_id("3")["status"], 429);
    assert_eq!(by_id("3")["headers"]["Retry-After"], "0.5");
    assert_eq!(by_id("4")["status"], 400);
    assert_eq!(by_id("5")["status"], 204);
    assert_eq!(by_id("6")["status"], 424);
    assert_eq!(by_id("7")["body"]["value"][0]["id"], "g-3");
    assert_eq!(
        env.mock.object(A, ObjectType::DeviceConfiguration, "dc-02").unwrap()["displayName"],
        "Batched"
    );
    // The throttled item alone is retried.
    let retry = json!({"requests": [{"id": "3", "method": "GET", "url": "/deviceManagement/assignmentFilters/f-1"}]});
    let a = answer(env.http.post(&batch).bearer_auth(&t).json(&retry).send().await.unwrap()).await;
    assert_eq!(a.body["responses"][0]["status"], 200);
    // Items are recorded (writes counted) as well as the envelope.
    let log = env.mock.requests();
    assert_eq!(log.iter().filter(|r| r.kind == RequestKind::Batch).count(), 2);
    assert_eq!(log.iter().filter(|r| r.in_batch && r.write).count(), 2);
    // 21 requests: refused whole.
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/groups"}))
        .collect();
    let a = answer(
        env.http
            .post(&batch)
            .bearer_auth(&t)
            .json(&json!({"requests": many}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_graph_error(&a, 400, "BadRequest");
    assert!(a.message().contains("20"), "{}", a.message());
    // A write without its content type: refused whole.
    let a = answer(
        env.http
            .post(&batch)
            .bearer_auth(&t)
            .json(&json!({"requests": [{"id": "1", "method": "PATCH", "url": "/deviceManagement/deviceConfigurations/dc-03", "body": {"displayName": "y"}}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 400);
    // No token: the envelope is refused.
    let a = answer(env.http.post(&batch).json(&body).send().await.unwrap()).await;
    assert_eq!(a.status, 401);
}

#[tokio::test]
async fn faults_from_the_folder_fire_as_scripted() {
    let faults = json!({"faults": [
        {"path": FILTERS, "method": "GET", "fault": "throttle", "retry_after": "2", "times": 1},
        {"path": format!("{DC}/dc-07"), "fault": "vanish"},
        {"path": DC, "fault": "broken_page", "page": 2},
        {"path": APPS, "fault": "unavailable", "times": 1},
        {"path": PS, "fault": "forbidden", "permission": "DeviceManagementScripts.Read.All", "times": 1}
    ]});
    let env = serve(|c| c, Some(faults)).await;
    let t = env.token(A).await;
    // Throttle with an integer Retry-After, once.
    let a = env.get(&t, FILTERS).await;
    assert_graph_error(&a, 429, "TooManyRequests");
    assert_eq!(a.headers["retry-after"], "2");
    assert_eq!(env.get(&t, FILTERS).await.status, 200);
    // Vanish: listed, but gone on read.
    let first = env.get(&t, DC).await;
    assert!(
        first.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == "dc-07")
    );
    assert_graph_error(&env.get(&t, &format!("{DC}/dc-07")).await, 404, "ResourceNotFound");
    assert_eq!(env.get(&t, &format!("{DC}/dc-07/assignments")).await.status, 404);
    // Broken page: page 1 reads, page 2 fails every time.
    let next = first.body["@odata.nextLink"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_graph_error(&env.get(&t, &next).await, 500, "InternalServerError");
    }
    // Unavailable, once.
    assert_graph_error(&env.get(&t, APPS).await, 503, "ServiceUnavailable");
    assert_eq!(env.get(&t, APPS).await.status, 200);
    // Forbidden, naming the permission.
    let a = env.get(&t, PS).await;
    assert_graph_error(&a, 403, "Forbidden");
    assert!(
        a.message().contains("DeviceManagementScripts.Read.All"),
        "{}",
        a.message()
    );
}

#[tokio::test]
async fn faults_added_at_runtime_fire_as_scripted() {
    let env = serve(|c| c, None).await;
    let t = env.token(A).await;
    // Over HTTP: a decimal Retry-After.
    let r = env
        .http
        .post(format!("{}/_mock/faults", env.mock.base_url()))
        .json(&json!({"tenant": A_DOMAIN, "faults": [{"path": GP, "fault": "throttle", "retry_after": "0.5", "times": 2}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    for _ in 0..2 {
        let a = env.get(&t, &format!("{GP}/gp-1")).await;
        assert_eq!(a.status, 429);
        assert_eq!(a.headers["retry-after"], "0.5");
    }
    assert_eq!(env.get(&t, &format!("{GP}/gp-1")).await.status, 200);
    let r = env
        .http
        .post(format!("{}/_mock/faults", env.mock.base_url()))
        .json(&json!({"tenant": A, "faults": [{"path": GP, "fault": "explode"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // In process: an expired token stays expired until the client gets a
    // new one.
    env.mock
        .add_faults(
            A,
            vec![FaultRule {
                times: Some(1),
                ..fault(SC, FaultKind::ExpireToken)
            }],
        )
        .unwrap();
    let a = env.get(&t, SC).await;
    assert_graph_error(&a, 401, "InvalidAuthenticationToken");
    assert!(a.message().contains("expired"));
    assert_eq!(env.get(&t, DC).await.status, 401, "the token itself expired");
    let fresh = env.token(A).await;
    assert_eq!(env.get(&fresh, SC).await.status, 200);
    // Writes only, for one method.
    env.mock
        .add_faults(
            A,
            vec![FaultRule {
                method: Some("PATCH".into()),
                ..fault(FILTERS, FaultKind::Unavailable)
            }],
        )
        .unwrap();
    assert_eq!(env.get(&fresh, &format!("{FILTERS}/f-1")).await.status, 200);
    let a = env
        .call(
            Method::PATCH,
            &fresh,
            &format!("{FILTERS}/f-1"),
            Some(json!({"displayName": "x"})),
        )
        .await;
    assert_eq!(a.status, 503);
    env.mock.clear_faults(A).unwrap();
    let a = env
        .call(
            Method::PATCH,
            &fresh,
            &format!("{FILTERS}/f-1"),
            Some(json!({"displayName": "x"})),
        )
        .await;
    assert_eq!(a.status, 204);
    // A broken first page of a navigation list.
    env.mock
        .add_faults(
            A,
            vec![FaultRule {
                page: Some(2),
                ..fault(&format!("{SC}/sc-1/settings"), FaultKind::BrokenPage)
            }],
        )
        .unwrap();
    let first = env.get(&fresh, &format!("{SC}/sc-1/settings")).await;
    assert_eq!(first.status, 200);
    let next = first.body["@odata.nextLink"].as_str().unwrap().to_owned();
    assert_eq!(env.get(&fresh, &next).await.status, 500);
}

#[tokio::test]
async fn a_throttle_fraction_answers_that_share_of_requests_429() {
    let env = serve(|c| c.throttle(0.25, "0.5"), None).await;
    let t = env.token(A).await;
    let mut throttled = 0;
    for _ in 0..40 {
        let a = env.get(&t, &format!("{FILTERS}/f-1")).await;
        if a.status == 429 {
            throttled += 1;
            assert_eq!(a.headers["retry-after"], "0.5");
            assert_eq!(a.code(), "TooManyRequests");
        } else {
            assert_eq!(a.status, 200);
        }
    }
    assert_eq!(throttled, 10);
    assert_eq!(env.stats().await.throttled, 10);
}

#[tokio::test]
async fn permissions_come_from_the_token_roles() {
    let env = serve(|c| c, None).await;
    let t = env.token(B).await;
    assert_eq!(
        jwt_payload(&t)["roles"],
        json!(["DeviceManagementConfiguration.Read.All"])
    );
    assert_eq!(env.get(&t, DC).await.status, 200);
    let a = env.get(&t, APPS).await;
    assert_graph_error(&a, 403, "Forbidden");
    assert!(
        a.message().ends_with("DeviceManagementApps.Read.All"),
        "{}",
        a.message()
    );
    let a = env
        .call(
            Method::PATCH,
            &t,
            &format!("{DC}/b-dc-1"),
            Some(json!({"displayName": "x"})),
        )
        .await;
    assert_graph_error(&a, 403, "Forbidden");
    assert!(
        a.message().contains("DeviceManagementConfiguration.ReadWrite.All"),
        "{}",
        a.message()
    );
    let a = env.get(&t, "groups").await;
    assert_graph_error(&a, 403, "Authorization_RequestDenied");
    assert!(a.message().contains("Group.Read.All"));
    assert_eq!(
        env.mock.object(B, ObjectType::DeviceConfiguration, "b-dc-1").unwrap()["displayName"],
        "B config"
    );
}

#[tokio::test]
async fn every_request_is_recorded_and_counted() {
    let env = serve(|c| c, None).await;
    let t = env.token(A).await;
    env.get(&t, DC).await;
    env.get(&t, &format!("{DC}/dc-01")).await;
    env.call(
        Method::PATCH,
        &t,
        &format!("{DC}/dc-01"),
        Some(json!({"displayName": "y"})),
    )
    .await;
    env.call(
        Method::POST,
        &t,
        &format!("{DC}/dc-01/assign"),
        Some(json!({"assignments": []})),
    )
    .await;
    env.call(Method::DELETE, &t, &format!("{DC}/dc-02"), None).await;
    env.get("garbage", DC).await;
    let s = env.stats().await;
    assert_eq!(
        s,
        Stats {
            requests: 7,
            reads: 3,
            writes: 3,
            throttled: 0,
            batch_items: 0,
            token_requests: 1
        }
    );
    assert_eq!(env.mock.stats(), s);
    assert_eq!(env.mock.writes().len(), 3);
    let r = env
        .http
        .get(format!("{}/_mock/requests", env.mock.base_url()))
        .send()
        .await
        .unwrap();
    let log: Vec<RequestRecord> = serde_json::from_value(r.json::<Value>().await.unwrap()["value"].clone()).unwrap();
    assert_eq!(log.len(), 7);
    assert_eq!(log[0].kind, RequestKind::Token);
    assert!(!log[0].path.contains("s3cret"));
    let patch = &log[3];
    assert_eq!((patch.method.as_str(), patch.status, patch.write), ("PATCH", 204, true));
    assert_eq!(patch.path, format!("/beta/{DC}/dc-01"));
    assert_eq!(patch.tenant.as_deref(), Some(A));
    assert_eq!(log[6].tenant, None);
    assert_eq!(log[6].status, 401);
    let since = env.mock.requests_since(log[4].seq);
    assert_eq!(since.len(), 2);
    env.mock.clear_requests();
    assert_eq!(env.mock.stats(), Stats::default());
}

#[tokio::test]
async fn start_refuses_bad_settings_and_folders_by_name() {
    let dir = tempfile::tempdir().unwrap();
    tenant_a(&dir.path().join("alpha"));
    let ok = || MockConfig::new().tenant(A, dir.path().join("alpha"));
    let e = start(ok().page_size(0), loopback()).await.unwrap_err().to_string();
    assert!(e.contains("--page-size"), "{e}");
    let e = start(ok().throttle(1.5, "1"), loopback())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("--throttle"), "{e}");
    let e = start(ok().throttle(0.1, "soon"), loopback())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("--retry-after"), "{e}");
    let e = start(MockConfig::new().tenant("not a tenant", dir.path()), loopback())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("neither a GUID nor a domain"), "{e}");
    let e = start(MockConfig::new().tenant(B, dir.path().join("missing")), loopback())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("--tenant") && e.contains("missing"), "{e}");
    let e = start(ok().token_lifetime(Duration::ZERO), loopback())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("--token-lifetime"), "{e}");
    // A domain names the folder's own tenant; a GUID serves it as another.
    let e = start(ok().tenant(A_DOMAIN, dir.path().join("alpha")), loopback())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("served twice"), "{e}");
    const C: &str = "33333333-3333-4333-8333-333333333333";
    tenant_b(&dir.path().join("beta"));
    let mock = start(
        MockConfig::new()
            .tenant(A_DOMAIN, dir.path().join("alpha"))
            .tenant(C, dir.path().join("alpha"))
            .tenant("b-alias.example.com", dir.path().join("beta")),
        loopback(),
    )
    .await
    .unwrap();
    let ids: Vec<String> = mock.tenants().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, [A, C, B]);
    let by_alias = mock.issue_token("b-alias.example.com", "app").unwrap();
    assert_eq!(jwt_payload(&by_alias)["tid"], B);
    let http = reqwest::Client::new();
    for (tenant, tid) in [(A_DOMAIN, A), (C, C)] {
        let token = mock.issue_token(tenant, "app").unwrap();
        assert_eq!(jwt_payload(&token)["tid"], tid);
        let r = http
            .delete(format!("{}/{DC}/dc-00", mock.graph_url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204, "{tenant}");
    }
    assert_eq!(
        mock.objects(C, ObjectType::DeviceConfiguration).unwrap().len(),
        59,
        "separate state"
    );
    mock.stop().await;
    std::fs::write(dir.path().join("alpha/beta/groups.json"), "{").unwrap();
    let e = start(ok(), loopback()).await.unwrap_err().to_string();
    assert!(e.contains("groups.json"), "{e}");
}

#[test]
fn the_binary_names_the_bad_flag_and_prints_its_address() {
    let bin = env!("CARGO_BIN_EXE_tenantatlas-mockgraph");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("alpha");
    tenant_a(&root);
    let tenant = format!("{A}={}", root.display());
    for (args, flag) in [
        (vec!["--tenant", "nodir"], "--tenant"),
        (vec!["--tenant", &tenant, "--throttle", "2"], "--throttle"),
        (vec!["--tenant", &tenant, "--retry-after", "x"], "--retry-after"),
        (vec!["--tenant", &tenant, "--page-size", "0"], "--page-size"),
        (vec!["--tenant", &tenant, "--bind", "nowhere"], "--bind"),
        (vec![], "--tenant"),
    ] {
        let out = std::process::Command::new(bin).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    let missing = format!("{B}={}", dir.path().join("none").display());
    let out = std::process::Command::new(bin)
        .args(["--tenant", &missing])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tenant"));

    let mut child = std::process::Command::new(bin)
        .args(["--tenant", &tenant, "--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let url = line.trim();
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"), "{line}");
}
