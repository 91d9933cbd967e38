//! The command line as users and scripts see it (CONTRACT.md).

use assert_cmd::Command;
use serde_json::Value;

use crate::{Db, both};

fn seed(db: &Db) -> (Value, Value) {
    let ws = db.json(&["workspace", "create", "Contoso MSP", "--json"]);
    assert_eq!(ws.as_object().unwrap().keys().collect::<Vec<_>>(), ["id", "name"]);
    let folder = db.tenant_folder("a");
    let tenant = db.json(&[
        "tenant",
        "add",
        "--workspace",
        "contoso msp",
        "Tenant A",
        "--provider",
        &format!("directory:{folder}"),
        "--json",
    ]);
    db.add_user("operator@contoso.test", "operator password 1", &[]);
    db.add_user("readonly@contoso.test", "readonly password 1", &[]);
    db.ok(&[
        "member",
        "add",
        "--workspace",
        "Contoso MSP",
        "operator@contoso.test",
        "--role",
        "operator",
    ]);
    db.ok(&[
        "member",
        "add",
        "--workspace",
        "Contoso MSP",
        "readonly@contoso.test",
        "--role",
        "readonly",
        "--tenant",
        "Tenant A",
    ]);
    (ws, tenant)
}

#[test]
fn migrate_and_admin_verbs() {
    both(|db| {
        assert_eq!(db.ok(&["migrate"]).trim(), "migrations applied");
        assert_eq!(db.ok(&["migrate"]).trim(), "migrations applied", "idempotent");
        assert_eq!(db.json(&["--json", "migrate"])["migrations"], "applied");
        let (ws, tenant) = seed(db);
        assert_eq!(ws["name"], "Contoso MSP");
        assert_eq!(tenant["workspace_id"], ws["id"]);
        assert_eq!(tenant["provider"], format!("directory:{}", db.tenant_folder("a")));
        assert_eq!(tenant["has_secret"], false);
        let u = db.add_user("Root@Contoso.test", "platform password", &["--platform-operator"]);
        assert_eq!(u["email"], "root@contoso.test");
        assert_eq!(u["platform_operator"], true);
        // bad input: exit 2, one line naming the field
        assert!(
            db.fails(&["workspace", "create", "contoso msp"], 2)
                .contains("name: a workspace with this name already exists")
        );
        assert!(
            db.fails(&["tenant", "add", "--workspace", "nope", "X"], 2)
                .contains("--workspace")
        );
        assert!(
            db.fails(
                &[
                    "tenant",
                    "add",
                    "--workspace",
                    "Contoso MSP",
                    "X",
                    "--provider",
                    "ftp:x"
                ],
                2
            )
            .contains("--provider")
        );
        let short = db
            .cmd(&["user", "add", "x@contoso.test"])
            .write_stdin("short\n")
            .output()
            .unwrap();
        assert_eq!(short.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&short.stderr).contains("password: must be at least 12 characters"));
        assert!(
            db.fails(
                &[
                    "member",
                    "add",
                    "--workspace",
                    "Contoso MSP",
                    "operator@contoso.test",
                    "--role",
                    "admin"
                ],
                2
            )
            .contains("--role")
        );
        let m = db.json(&[
            "member",
            "add",
            "--workspace",
            "Contoso MSP",
            "operator@contoso.test",
            "--role",
            "manager",
            "--tenant",
            "Tenant A",
            "--json",
        ]);
        assert_eq!(m["role"], "manager");
        assert_eq!(m["tenants"], serde_json::json!([tenant["id"]]));
    });
}

#[test]
fn run_start_shapes_dedupe_and_refusals() {
    both(|db| {
        let (_, tenant) = seed(db);
        let first = db.json(&[
            "--enable-synthetic",
            "run",
            "start",
            "synthetic",
            "--param",
            "key=nightly",
            "--tenant",
            "Tenant A",
            "--as",
            "operator@contoso.test",
            "--json",
        ]);
        assert_eq!(first.as_object().unwrap().keys().collect::<Vec<_>>(), ["run", "joined"]);
        assert_eq!(first["joined"], false);
        let run = &first["run"];
        for key in [
            "id",
            "workspace_id",
            "tenant_id",
            "type",
            "status",
            "outcome",
            "bucket",
            "problem_class",
            "initiator",
            "progress",
            "summary_counts",
            "failures",
            "reason_code",
            "created_at",
            "started_at",
            "completed_at",
            "parent_id",
        ] {
            assert!(run.get(key).is_some(), "run JSON lacks {key}: {run}");
        }
        assert_eq!(run["type"], "synthetic");
        assert_eq!(
            (
                run["status"].as_str(),
                run["bucket"].as_str(),
                run["problem_class"].as_str()
            ),
            (Some("queued"), Some("queued"), Some("active"))
        );
        assert_eq!(run["tenant_id"], tenant["id"]);
        assert_eq!(run["outcome"], Value::Null);
        assert_eq!(run["progress"]["mode"], "indeterminate");
        // the system joins the same active run
        let again = db.json(&[
            "--enable-synthetic",
            "run",
            "start",
            "synthetic",
            "--param",
            "key=nightly",
            "--tenant",
            tenant["id"].as_str().unwrap(),
            "--json",
        ]);
        assert_eq!(again["joined"], true);
        assert_eq!(again["run"]["id"], run["id"]);
        // `--json` is global: before the command as well as after it
        let before_command = db.json(&["--json", "runs", "show", run["id"].as_str().unwrap()]);
        assert_eq!(before_command["id"], run["id"]);
        // the "View run" link carries the hub's public URL when it is known
        let id = run["id"].as_str().unwrap();
        let text = db.ok(&[
            "--enable-synthetic",
            "--public-url",
            "https://atlas.example.com/",
            "run",
            "start",
            "synthetic",
            "--param",
            "key=nightly",
            "--tenant",
            "Tenant A",
        ]);
        assert!(
            text.contains(&format!("View run: https://atlas.example.com/admin/operations/{id}\n")),
            "{text}"
        );
        let shown = db.ok(&["--public-url", "https://atlas.example.com", "runs", "show", id]);
        assert!(
            shown.contains(&format!("View:       https://atlas.example.com/admin/operations/{id}")),
            "{shown}"
        );
        let bad = db.run(&["--public-url", "atlas.example.com", "runs", "list"]);
        assert_eq!(bad.status.code(), Some(2));
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(err.contains("--public-url") && err.contains("http(s) URL"), "{err}");
        // refused: exit 3, nothing created
        let before = db.run_count();
        assert!(
            db.fails(
                &[
                    "--enable-synthetic",
                    "run",
                    "start",
                    "synthetic",
                    "--tenant",
                    "Tenant A",
                    "--as",
                    "readonly@contoso.test",
                    "--param",
                    "key=other"
                ],
                3
            )
            .contains("refused")
        );
        assert!(
            db.fails(&["run", "start", "synthetic", "--tenant", "Tenant A"], 3)
                .contains("TENANTATLAS_ENABLE_SYNTHETIC")
        );
        assert!(
            db.fails(&["run", "start", "telemetry.prune", "--tenant", "Tenant A"], 3)
                .contains("system operation")
        );
        // a type this build has no handler for is bad input (exit 2), for
        // every user, and creates nothing
        for who in ["owner@contoso.test", "operator@contoso.test"] {
            let err = db.fails(
                &["run", "start", "inventory.sync", "--tenant", "Tenant A", "--as", who],
                2,
            );
            assert!(err.contains("type:") && err.contains("no handler"), "{err}");
        }
        assert!(
            db.fails(&["run", "start", "policy.export", "--tenant", "Tenant A"], 2)
                .contains("Policy export")
        );
        assert_eq!(db.run_count(), before, "refused starts create nothing");
        // bad input: exit 2 naming the field
        assert!(
            db.fails(&["run", "start", "inventory.sink", "--tenant", "Tenant A"], 2)
                .contains("TYPE: unknown operation type")
        );
        assert!(
            db.fails(
                &[
                    "--enable-synthetic",
                    "run",
                    "start",
                    "synthetic",
                    "--tenant",
                    "Tenant A",
                    "--param",
                    "units=many"
                ],
                2
            )
            .contains("params.units")
        );
        assert!(
            db.fails(
                &[
                    "--enable-synthetic",
                    "run",
                    "start",
                    "synthetic",
                    "--tenant",
                    "Tenant A",
                    "--param",
                    "noequals"
                ],
                2
            )
            .contains("--param")
        );
        assert!(
            db.fails(
                &["--enable-synthetic", "run", "start", "synthetic", "--tenant", "Nope"],
                2
            )
            .contains("tenant")
        );
        assert!(
            db.fails(
                &[
                    "--enable-synthetic",
                    "run",
                    "start",
                    "synthetic",
                    "--tenant",
                    "Tenant A",
                    "--as",
                    "ghost@contoso.test"
                ],
                2
            )
            .contains("--as")
        );
        // synthetic when enabled, by flag or environment
        let syn = db.json(&[
            "--enable-synthetic",
            "run",
            "start",
            "synthetic",
            "--tenant",
            "Tenant A",
            "--param",
            "units=3",
            "--json",
        ]);
        assert_eq!(
            syn["run"]["params"],
            serde_json::json!({"units": 3, "unit_ms": 0, "duration_ms": 0})
        );
        let out = db
            .cmd(&["run", "start", "synthetic", "--tenant", "Tenant A", "--json"])
            .env("TENANTATLAS_ENABLE_SYNTHETIC", "1")
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(db.run_count(), before + 2);
    });
}

#[test]
fn runs_list_show_and_cancel() {
    both(|db| {
        seed(db);
        let mut ids = Vec::new();
        for i in 0..5 {
            let r = db.json(&[
                "--enable-synthetic",
                "run",
                "start",
                "synthetic",
                "--tenant",
                "Tenant A",
                "--param",
                &format!("key=k{i}"),
                "--json",
            ]);
            ids.push(r["run"]["id"].as_str().unwrap().to_owned());
        }
        let counted = db.json(&[
            "--enable-synthetic",
            "run",
            "start",
            "synthetic",
            "--param",
            "units=5",
            "--param",
            "key=counted",
            "--tenant",
            "Tenant A",
            "--json",
        ]);
        ids.push(counted["run"]["id"].as_str().unwrap().to_owned());
        assert!(
            db.json(&["runs", "list", "--type", "telemetry.prune", "--json"])["runs"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        // filters and pages
        let page = db.json(&["runs", "list", "--type", "synthetic", "--limit", "2", "--json"]);
        assert_eq!(
            page.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["runs", "next_cursor"]
        );
        assert_eq!(page["runs"].as_array().unwrap().len(), 2);
        let mut seen: Vec<String> = page["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        let mut cursor = page["next_cursor"].as_str().unwrap().to_owned();
        loop {
            let next = db.json(&[
                "runs",
                "list",
                "--type",
                "synthetic",
                "--limit",
                "2",
                "--cursor",
                &cursor,
                "--json",
            ]);
            seen.extend(
                next["runs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["id"].as_str().unwrap().to_owned()),
            );
            match next["next_cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => break,
            }
        }
        let mut want = ids.clone();
        want.reverse();
        assert_eq!(seen, want, "every synthetic run once, newest first");
        assert_eq!(
            db.json(&[
                "runs",
                "list",
                "--status",
                "queued",
                "--problem",
                "active",
                "--tenant",
                "Tenant A",
                "--workspace",
                "Contoso MSP",
                "--json"
            ])["runs"]
                .as_array()
                .unwrap()
                .len(),
            6
        );
        assert_eq!(
            db.json(&["runs", "list", "--status", "cancelled", "--json"])["runs"]
                .as_array()
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            db.json(&["runs", "list", "--since", "2100-01-01T00:00:00Z", "--json"])["runs"]
                .as_array()
                .unwrap()
                .len(),
            0
        );
        assert!(db.fails(&["runs", "list", "--status", "done"], 2).contains("--status"));
        assert!(db.fails(&["runs", "list", "--problem", "bad"], 2).contains("--problem"));
        assert!(
            db.fails(&["runs", "list", "--since", "yesterday"], 2)
                .contains("--since")
        );
        assert!(
            db.fails(&["runs", "list", "--cursor", "garbage"], 2)
                .contains("--cursor")
        );
        assert!(db.fails(&["runs", "list", "--limit", "0"], 2).contains("--limit"));
        // a readonly member scoped to Tenant A sees its runs; listing is scoped
        assert_eq!(
            db.json(&["runs", "list", "--as", "readonly@contoso.test", "--json"])["runs"]
                .as_array()
                .unwrap()
                .len(),
            6
        );
        // cancel: refused for readonly (exit 3, unchanged), then done as operator
        assert!(
            db.fails(&["run", "cancel", &ids[0], "--as", "readonly@contoso.test"], 3)
                .contains("refused")
        );
        let cancelled = db.json(&["run", "cancel", &ids[0], "--as", "operator@contoso.test", "--json"]);
        assert_eq!(
            (
                cancelled["outcome"].as_str(),
                cancelled["bucket"].as_str(),
                cancelled["reason_code"].as_str()
            ),
            (Some("cancelled"), Some("cancelled"), Some("run.cancelled"))
        );
        assert!(db.ok(&["run", "cancel", &ids[0]]).contains("Already completed"));
        // show: the run plus its timeline
        let shown = db.json(&["runs", "show", &ids[0], "--json"]);
        assert_eq!(shown["id"].as_str(), Some(ids[0].as_str()));
        let kinds: Vec<_> = shown["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kinds, ["created", "completed"]);
        let human = db.ok(&["runs", "show", &ids[0]]);
        assert!(
            human.contains("Timeline:") && human.contains("completed by operator@contoso.test"),
            "{human}"
        );
        assert!(db.fails(&["runs", "show", "not-a-uuid"], 2).contains("run"));
        assert!(
            db.fails(&["runs", "show", &uuid::Uuid::now_v7().to_string()], 1)
                .contains("not found")
        );
        let table = db.ok(&["runs", "list"]);
        assert!(
            table.starts_with("ID") && table.contains("synthetic") && table.contains("Tenant A"),
            "{table}"
        );
    });
}

#[test]
fn the_default_database_is_a_file_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::cargo_bin("tenantatlas").unwrap();
    c.current_dir(dir.path())
        .env_remove("TENANTATLAS_DATABASE_URL")
        .args(["workspace", "create", "W", "--json"]);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("tenantatlas.db").exists());
    let bad = Command::cargo_bin("tenantatlas")
        .unwrap()
        .env("TENANTATLAS_DATABASE_URL", "mysql://u:secretpw@h/db")
        .args(["migrate"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("unsupported database URL") && !err.contains("secretpw"),
        "{err}"
    );
}

#[test]
fn tokens_users_members_and_schedules_are_administered() {
    both(|db| {
        seed(db);
        // tokens: created with an expiry, listed without secrets, revoked
        let t = db.json(&[
            "token",
            "create",
            "operator@contoso.test",
            "--name",
            "ci",
            "--expires-in",
            "30d",
            "--json",
        ]);
        let secret = t["token"].as_str().unwrap();
        assert!(secret.starts_with("tat_"));
        assert!(!t["expires_at"].is_null());
        let listed = db.json(&["token", "list", "--user", "operator@contoso.test", "--json"]);
        assert_eq!(listed["tokens"][0]["id"], t["id"]);
        assert_eq!(listed["tokens"][0]["name"], "ci");
        assert!(!listed.to_string().contains(secret), "never the secret");
        let id = t["id"].as_str().unwrap();
        let revoked = db.json(&["token", "revoke", id, "--json"]);
        assert_eq!(revoked["revoked"]["id"], t["id"]);
        assert!(
            db.json(&["token", "list", "--json"])["tokens"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert!(db.fails(&["token", "revoke", id], 2).contains("id"));
        assert!(
            db.fails(&["token", "create", "operator@contoso.test", "--expires-in", "soon"], 2)
                .contains("--expires-in")
        );
        // members: listed, role changed, removed; the last owner stays
        db.add_user("boss@contoso.test", "boss password 12", &[]);
        db.ok(&[
            "member",
            "add",
            "--workspace",
            "Contoso MSP",
            "boss@contoso.test",
            "--role",
            "owner",
        ]);
        let members = db.json(&["member", "list", "--workspace", "Contoso MSP", "--json"]);
        assert_eq!(members["members"].as_array().unwrap().len(), 3, "{members}");
        let m = db.json(&[
            "member",
            "role",
            "--workspace",
            "Contoso MSP",
            "readonly@contoso.test",
            "--role",
            "operator",
            "--json",
        ]);
        assert_eq!(m["role"], "operator");
        assert!(
            db.fails(
                &[
                    "member",
                    "role",
                    "--workspace",
                    "Contoso MSP",
                    "boss@contoso.test",
                    "--role",
                    "readonly"
                ],
                2
            )
            .contains("at least one owner")
        );
        db.ok(&[
            "member",
            "remove",
            "--workspace",
            "Contoso MSP",
            "readonly@contoso.test",
        ]);
        assert!(
            db.fails(
                &[
                    "member",
                    "remove",
                    "--workspace",
                    "Contoso MSP",
                    "readonly@contoso.test"
                ],
                2
            )
            .contains("is not a member")
        );
        // users: listed, password set from stdin, disabled
        let users = db.json(&["user", "list", "--json"]);
        assert_eq!(users["users"].as_array().unwrap().len(), 3);
        let twin = db
            .cmd(&["user", "add", "Boss@Contoso.test"])
            .write_stdin("another password 1\n")
            .output()
            .unwrap();
        assert_eq!(twin.status.code(), Some(2), "a taken address is bad input");
        assert!(
            String::from_utf8_lossy(&twin.stderr).contains("email: a user with this e-mail address already exists")
        );
        let out = db
            .cmd(&["user", "passwd", "operator@contoso.test"])
            .write_stdin("a brand new password\n")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let short = db
            .cmd(&["user", "passwd", "operator@contoso.test"])
            .write_stdin("short\n")
            .output()
            .unwrap();
        assert_eq!(short.status.code(), Some(2));
        let u = db.json(&["user", "disable", "operator@contoso.test", "--json"]);
        assert!(!u["disabled_at"].is_null());
        // schedules: removed by name; the runs they started would stay
        db.ok(&[
            "--enable-synthetic",
            "schedule",
            "add",
            "nightly",
            "--cron",
            "0 2 * * *",
            "--type",
            "synthetic",
            "--tenant",
            "Tenant A",
        ]);
        let removed = db.json(&["schedule", "remove", "nightly", "--json"]);
        assert_eq!(removed["removed"]["name"], "nightly");
        assert!(db.fails(&["schedule", "remove", "nightly"], 2).contains("schedule"));
    });
}
