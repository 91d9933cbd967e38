//! Tenant connections at the command line: Graph tenants whose client
//! secret comes from standard input only and is sealed at rest, and
//! directory tenants whose folder must load.

use serde_json::Value;

use crate::{Db, both};

const APP: &str = "3F2504E0-4F89-11D3-9A0C-0305E82C3301";
const APP2: &str = "6f1e8e4a-3c2b-4d7e-9a51-2f0c8b7d1a01";
const SECRET: &str = "Kv8Q~first.CLIENT_secret-value-0001";
const SECRET2: &str = "Zt3R~second.CLIENT_secret-value-0002";

/// Runs `args` with `stdin`; answers (exit code, stdout, stderr).
fn with_stdin(db: &Db, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let out = db.cmd(args).write_stdin(stdin.to_owned()).output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn add_graph(db: &Db, name: &str, tenant: &str, app: &str, secret: &str) -> Value {
    let (code, out, err) = with_stdin(
        db,
        &[
            "tenant",
            "add",
            "--workspace",
            "Contoso MSP",
            name,
            "--provider",
            &format!("graph:{tenant}"),
            "--client-id",
            app,
            "--json",
        ],
        &format!("{secret}\n"),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.contains(secret) && !err.contains(secret));
    serde_json::from_str(&out).unwrap()
}

fn tenant_count(db: &Db) -> usize {
    db.json(&["tenant", "list", "--workspace", "Contoso MSP", "--json"])["tenants"]
        .as_array()
        .unwrap()
        .len()
}

/// Everything the database holds on disk (SQLite: the file and its WAL),
/// or every sealed secret as PostgreSQL returns it.
fn stored_bytes(db: &Db) -> Vec<u8> {
    if let Some(file) = db.sqlite_file() {
        let dir = file.parent().unwrap();
        let stem = file.file_name().unwrap().to_str().unwrap().to_owned();
        let mut all = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_str().unwrap().to_owned();
            if name.starts_with(&stem) && !name.ends_with(".key") {
                all.extend(std::fs::read(entry.path()).unwrap());
            }
        }
        assert!(all.len() > 4096, "the database was read");
        all
    } else {
        let (base, schema) = db.pg_schema.clone().unwrap();
        let out = std::process::Command::new("psql")
            .args([
                base.as_str(),
                "-qAt",
                "-c",
                &format!("SELECT client_id, encode(sealed_secret, 'escape') FROM {schema}.tenant_credentials"),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(!out.stdout.is_empty(), "the credentials were read");
        out.stdout
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn graph_tenants_take_their_secret_from_standard_input_and_keep_it_sealed() {
    both(|db| {
        db.ok(&["workspace", "create", "Contoso MSP"]);
        let t = add_graph(db, "Contoso Graph", "contoso.onmicrosoft.com", APP, SECRET);
        assert_eq!(t["provider"], "graph:contoso.onmicrosoft.com");
        assert_eq!(t["client_id"], APP.to_lowercase());
        assert_eq!(t["has_secret"], true);
        assert!(t.get("secret").is_none() && t.get("client_secret").is_none());

        #[cfg(unix)]
        if let Some(file) = db.sqlite_file() {
            use std::os::unix::fs::PermissionsExt as _;
            let key = file.with_file_name("cli.db.key");
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "the key file beside the database is private");
        }

        // listings show that a secret is stored, never the secret
        let folder = db.tenant_folder("dir");
        db.ok(&[
            "tenant",
            "add",
            "--workspace",
            "Contoso MSP",
            "Directory",
            "--provider",
            &format!("directory:{folder}"),
        ]);
        let list = db.ok(&["tenant", "list", "--workspace", "Contoso MSP", "--json"]);
        assert!(!list.contains(SECRET));
        let list: Value = serde_json::from_str(&list).unwrap();
        let by_name = |n: &str| {
            list["tenants"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == n)
                .unwrap()
                .clone()
        };
        assert_eq!(by_name("Contoso Graph")["has_secret"], true);
        assert_eq!(by_name("Contoso Graph")["client_id"], APP.to_lowercase());
        assert_eq!(by_name("Directory")["has_secret"], false);
        assert_eq!(by_name("Directory")["client_id"], Value::Null);
        let text = db.ok(&["tenant", "list", "--workspace", "Contoso MSP"]);
        assert!(text.contains("secret stored") && !text.contains(SECRET), "{text}");

        // rotation: a new client id and secret, from standard input
        let (code, out, err) = with_stdin(
            db,
            &["tenant", "credentials", "set", "Contoso Graph", "--client-id", APP2],
            &format!("  {SECRET2}  \n"),
        );
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains(APP2) && !out.contains(SECRET2), "{out}");
        let shown = db.json(&["tenant", "show", "contoso graph", "--json"]);
        assert_eq!(shown["client_id"], APP2);
        assert_eq!(shown["has_secret"], true);

        // the database holds neither secret in clear
        let bytes = stored_bytes(db);
        for s in [SECRET, SECRET2, "CLIENT_secret"] {
            assert!(!contains(&bytes, s), "{s} is in the database in clear");
        }
        assert!(contains(&bytes, APP2), "the read covered the credentials");
    });
}

#[test]
fn secrets_on_the_command_line_and_bad_connections_are_refused() {
    both(|db| {
        db.ok(&["workspace", "create", "Contoso MSP"]);
        let graph = ["--provider", "graph:contoso.onmicrosoft.com", "--client-id", APP];
        fn add<'a>(extra: &[&'a str]) -> Vec<&'a str> {
            let mut a = vec!["tenant", "add", "--workspace", "Contoso MSP", "Graph"];
            a.extend_from_slice(extra);
            a
        }
        // a secret on the command line: refused, not echoed, nothing added
        for flag in [
            vec!["--client-secret", "argv-secret-1"],
            vec!["--client-secret=argv-secret-1"],
            vec!["--secret", "argv-secret-1"],
            vec!["--client-secret"],
        ] {
            let mut args = add(&graph);
            args.extend(flag.iter().copied());
            let (code, out, err) = with_stdin(db, &args, &format!("{SECRET}\n"));
            assert_eq!(code, Some(2), "{args:?}: {err}");
            assert!(out.is_empty());
            assert!(err.contains("standard input"), "{err}");
            assert!(
                !err.contains("argv-secret-1"),
                "the refused secret is not echoed: {err}"
            );
        }
        let (code, _, err) = with_stdin(
            db,
            &[
                "tenant",
                "credentials",
                "set",
                "Graph",
                "--client-id",
                APP,
                "--client-secret",
                "argv-secret-1",
            ],
            "",
        );
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("standard input") && !err.contains("argv-secret-1"),
            "{err}"
        );
        assert_eq!(tenant_count(db), 0);

        // --client-id goes with graph: and only with it
        assert!(
            db.fails(&add(&["--provider", "graph:contoso.onmicrosoft.com"]), 2)
                .contains("--client-id")
        );
        let folder = db.tenant_folder("d");
        let dir = format!("directory:{folder}");
        assert!(
            db.fails(&add(&["--provider", &dir, "--client-id", APP]), 2)
                .contains("--client-id")
        );
        assert!(db.fails(&add(&["--client-id", APP]), 2).contains("--client-id"));
        let mut bad_id = add(&graph);
        bad_id[8] = "my-app";
        let (code, _, err) = with_stdin(db, &bad_id, &format!("{SECRET}\n"));
        assert_eq!(code, Some(2));
        assert!(err.contains("client-id") && err.contains("GUID"), "{err}");
        // a tenant id that is neither a GUID nor a domain
        assert!(
            db.fails(&add(&["--provider", "graph:not a tenant", "--client-id", APP]), 2)
                .contains("--provider")
        );
        // no secret on standard input
        for empty in ["", "\n", "   \n"] {
            let (code, _, err) = with_stdin(db, &add(&graph), empty);
            assert_eq!(code, Some(2), "{empty:?}: {err}");
            assert!(err.contains("client secret") && err.contains("standard input"), "{err}");
        }
        assert_eq!(tenant_count(db), 0, "nothing was added");

        // credentials belong to graph tenants only
        db.ok(&[
            "tenant",
            "add",
            "--workspace",
            "Contoso MSP",
            "Directory",
            "--provider",
            &dir,
        ]);
        let (code, _, err) = with_stdin(
            db,
            &["tenant", "credentials", "set", "Directory", "--client-id", APP],
            &format!("{SECRET}\n"),
        );
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("not connected through Microsoft Graph"), "{err}");
        assert_eq!(db.json(&["tenant", "show", "Directory", "--json"])["has_secret"], false);
    });
}

#[test]
fn the_secret_key_must_be_a_key_and_its_file_private() {
    both(|db| {
        db.ok(&["workspace", "create", "Contoso MSP"]);
        // a key that is not 32 bytes of base64 stops every command
        for bad in ["short", "not base64 at all!", "c2hvcnQ="] {
            let out = db
                .cmd(&["tenant", "list", "--workspace", "Contoso MSP"])
                .env("TENANTATLAS_SECRET_KEY", bad)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{bad:?}");
            let err = String::from_utf8(out.stderr).unwrap();
            assert!(
                err.contains("TENANTATLAS_SECRET_KEY") && err.contains("base64"),
                "{err}"
            );
            assert!(!err.contains(bad), "the value is not echoed: {err}");
        }
        let args = [
            "tenant",
            "add",
            "--workspace",
            "Contoso MSP",
            "Graph",
            "--provider",
            "graph:contoso.onmicrosoft.com",
            "--client-id",
            APP,
        ];
        if db.is_postgres() {
            // PostgreSQL has no key file: without the key nothing is stored
            let out = db
                .cmd(&args)
                .env_remove("TENANTATLAS_SECRET_KEY")
                .write_stdin(format!("{SECRET}\n"))
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2));
            let err = String::from_utf8(out.stderr).unwrap();
            assert!(err.contains("TENANTATLAS_SECRET_KEY"), "{err}");
            assert_eq!(tenant_count(db), 0, "no tenant without its credentials");
            return;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let file = db.sqlite_file().unwrap();
            let key = file.with_file_name("cli.db.key");
            assert!(!key.exists(), "the key file is made on first use only");
            let (code, _, err) = with_stdin(db, &args, &format!("{SECRET}\n"));
            assert_eq!(code, Some(0), "{err}");
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
            let (code, _, err) = with_stdin(
                db,
                &["tenant", "credentials", "set", "Graph", "--client-id", APP2],
                &format!("{SECRET2}\n"),
            );
            assert_eq!(code, Some(2), "{err}");
            assert!(err.contains("cli.db.key") && err.contains("chmod 600"), "{err}");
            assert_eq!(
                db.json(&["tenant", "show", "Graph", "--json"])["client_id"],
                APP.to_lowercase()
            );
            // with the key in the variable instead, the file is not used
            let out = db
                .cmd(&[
                    "tenant",
                    "add",
                    "--workspace",
                    "Contoso MSP",
                    "Graph 2",
                    "--provider",
                    "graph:fabrikam.onmicrosoft.com",
                    "--client-id",
                    APP2,
                ])
                .env("TENANTATLAS_SECRET_KEY", crate::TEST_SECRET_KEY)
                .write_stdin(format!("{SECRET2}\n"))
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
    });
}

#[test]
fn directory_tenants_must_load_and_are_kept_by_absolute_path() {
    both(|db| {
        db.ok(&["workspace", "create", "Contoso MSP"]);
        let folder = db.tenant_folder("contoso");
        // a relative path is made absolute against the working directory
        let out = db
            .cmd(&[
                "tenant",
                "add",
                "--workspace",
                "Contoso MSP",
                "Relative",
                "--provider",
                "directory:contoso",
                "--json",
            ])
            .current_dir(db.dir())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let t: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(t["provider"], format!("directory:{folder}"));

        // a malformed file is refused, naming the file; nothing is added
        let bad = std::path::Path::new(&folder).join("beta/deviceManagement");
        std::fs::create_dir_all(&bad).unwrap();
        let file = bad.join("deviceConfigurations.json");
        std::fs::write(&file, "{\"value\": [ not json").unwrap();
        let dir = format!("directory:{folder}");
        let err = db.fails(
            &[
                "tenant",
                "add",
                "--workspace",
                "Contoso MSP",
                "Broken",
                "--provider",
                &dir,
            ],
            2,
        );
        assert!(
            err.contains("--provider") && err.contains(file.to_str().unwrap()),
            "{err}"
        );
        // a folder that is not there
        let gone = format!("directory:{}", db.dir().join("nowhere").display());
        assert!(
            db.fails(
                &[
                    "tenant",
                    "add",
                    "--workspace",
                    "Contoso MSP",
                    "Gone",
                    "--provider",
                    &gone
                ],
                2
            )
            .contains("nowhere")
        );
        assert_eq!(tenant_count(db), 1);
    });
}

/// The Entra tenant id the local Graph serves in the verify test.
const SERVED: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
/// Another served tenant, whose app lacks `Group.Read.All`.
const NARROW: &str = "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";

/// `tenant verify --json`: exit code, the answer, stderr.
fn verify(db: &Db, tenant: &str, graph: &str) -> (Option<i32>, Value, String, String) {
    let out = db
        .cmd(&["tenant", "verify", tenant, "--json", "--timeout", "60"])
        // every log line the check writes is read for secrets
        .env("RUST_LOG", "debug")
        .env("TENANTATLAS_GRAPH_URL", graph)
        .env("TENANTATLAS_LOGIN_URL", graph)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let answer: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("one JSON document ({e}): {stdout}"));
    (
        out.status.code(),
        answer,
        stdout,
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn check<'a>(answer: &'a Value, name: &str) -> &'a Value {
    answer["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {answer}"))
}

#[test]
fn tenant_verify_checks_sign_in_reads_and_permissions_of_directory_and_graph_tenants() {
    both(|db| {
        db.ok(&["workspace", "create", "Contoso MSP"]);
        // the local Graph serves the demo's contoso folder twice: once with
        // every permission, once as an app without Group.Read.All
        let contoso = db.dir().join("contoso");
        tenantatlas_providers::extract_demo_tenant("contoso", &contoso).unwrap();
        let narrow = db.dir().join("narrow");
        tenantatlas_providers::extract_demo_tenant("contoso", &narrow).unwrap();
        let info = narrow.join("tenant.json");
        let mut t: Value = serde_json::from_slice(&std::fs::read(&info).unwrap()).unwrap();
        t["grantedPermissions"] = serde_json::json!([
            "DeviceManagementConfiguration.ReadWrite.All",
            "DeviceManagementApps.ReadWrite.All"
        ]);
        std::fs::write(&info, serde_json::to_vec_pretty(&t).unwrap()).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mock = rt
            .block_on(tenantatlas_mockgraph::start(
                tenantatlas_mockgraph::MockConfig {
                    tenants: vec![(SERVED.into(), contoso.clone()), (NARROW.into(), narrow.clone())],
                    client_secret: Some(SECRET.into()),
                    ..tenantatlas_mockgraph::MockConfig::default()
                },
                ([127, 0, 0, 1], 0).into(),
            ))
            .unwrap();
        let graph = mock.base_url().to_owned();

        // a directory tenant: every check passes
        db.ok(&[
            "tenant",
            "add",
            "--workspace",
            "Contoso MSP",
            "Contoso Files",
            "--provider",
            &format!("directory:{}", contoso.display()),
        ]);
        let (code, answer, _, err) = verify(db, "Contoso Files", &graph);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(answer["ok"], true);
        assert_eq!(answer["provider"], "directory");
        assert_eq!(answer["checks"].as_array().unwrap().len(), 13, "{answer}");
        assert_eq!(answer["missing_permissions"], serde_json::json!([]));
        assert_eq!(check(&answer, "read settings_catalog_policy")["ok"], true);

        // a Graph tenant through the local Graph
        add_graph(db, "Contoso Graph", SERVED, APP, SECRET);
        let before = mock.stats();
        let (code, answer, _, err) = verify(db, "Contoso Graph", &graph);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(answer["ok"], true, "{answer}");
        assert_eq!(answer["provider"], "graph");
        let after = mock.stats();
        assert!(after.reads >= before.reads + 9, "one read per object type at least");
        assert_eq!(after.writes, before.writes, "a check writes nothing");

        // an app without Group.Read.All: named, with its reason code
        add_graph(db, "Contoso Narrow", NARROW, APP, SECRET);
        let (code, answer, _, _) = verify(db, "Contoso Narrow", &graph);
        assert_eq!(code, Some(1));
        assert_eq!(answer["ok"], false);
        assert_eq!(answer["missing_permissions"], serde_json::json!(["Group.Read.All"]));
        let p = check(&answer, "permission Group.Read.All");
        assert_eq!(p["reason_code"], "provider.permission_missing");
        assert!(p["message"].as_str().unwrap().contains("Group.Read.All"), "{p}");
        assert_eq!(
            check(&answer, "read group")["reason_code"],
            "provider.permission_missing"
        );
        assert_eq!(check(&answer, "read device_configuration")["ok"], true);

        // a revoked secret: sign-in fails, and the secrets stay out of every
        // answer, the run and the database
        let (code, _, err) = with_stdin(
            db,
            &["tenant", "credentials", "set", "Contoso Graph", "--client-id", APP],
            &format!("{SECRET2}\n"),
        );
        assert_eq!(code, Some(0), "{err}");
        let (code, answer, stdout, stderr) = verify(db, "Contoso Graph", &graph);
        assert_eq!(code, Some(1));
        assert_eq!(
            check(&answer, "sign-in")["reason_code"],
            "provider.auth_failed",
            "{answer}"
        );
        assert_eq!(check(&answer, "read group")["ok"], false);
        let runs = db.ok(&["runs", "list", "--type", "provider.verify", "--json"]);
        let shown: Vec<String> = serde_json::from_str::<Value>(&runs).unwrap()["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| db.ok(&["runs", "show", r["id"].as_str().unwrap(), "--json"]))
            .collect();
        assert_eq!(shown.len(), 4);
        let bytes = stored_bytes(db);
        for s in [SECRET, SECRET2] {
            for (what, text) in [("stdout", &stdout), ("stderr", &stderr), ("runs", &runs)] {
                assert!(!text.contains(s), "{s} in {what}");
            }
            assert!(shown.iter().all(|r| !r.contains(s)), "{s} in a run");
            assert!(!contains(&bytes, s), "{s} in the database in clear");
        }
        // a tenant without a provider cannot be checked: the run is blocked
        db.ok(&["tenant", "add", "--workspace", "Contoso MSP", "Bare"]);
        let (code, answer, _, _) = verify(db, "Bare", &graph);
        assert_eq!(code, Some(1));
        assert_eq!(answer["ok"], false);
        assert_eq!(answer["checks"][0]["name"], "connect", "{answer}");
        assert!(
            answer["checks"][0]["message"].as_str().unwrap().contains("no provider"),
            "{answer}"
        );
        rt.block_on(mock.stop());
    });
}
