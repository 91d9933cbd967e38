//! The `tenantatlas` binary as users, scripts and operators see it, on
//! SQLite and, when `TENANTATLAS_TEST_POSTGRES_URL` is set, on PostgreSQL:
//! the command-line contract, and faults (killed workers, a restarted
//! database, a lost node).
#![expect(clippy::unwrap_used, reason = "test code")]

mod contract;
mod faults;
mod tenants;

use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

/// A database for one test: an SQLite file, or a fresh PostgreSQL schema.
pub(crate) struct Db {
    pub(crate) url: String,
    _dir: tempfile::TempDir,
    pg_schema: Option<(String, String)>,
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some((base, schema)) = self.pg_schema.take() {
            let _ = std::process::Command::new("psql")
                .args([base.as_str(), "-qc", &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")])
                .output();
        }
    }
}

pub(crate) fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    Db {
        url: format!("sqlite://{}/cli.db", dir.path().display()),
        _dir: dir,
        pg_schema: None,
    }
}

pub(crate) fn postgres() -> Option<Db> {
    let base = std::env::var("TENANTATLAS_TEST_POSTGRES_URL").ok()?;
    let schema = format!("cli_{}", uuid::Uuid::now_v7().simple());
    let made = std::process::Command::new("psql")
        .args([base.as_str(), "-qc", &format!("CREATE SCHEMA {schema}")])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    Some(Db {
        url,
        _dir: tempfile::tempdir().unwrap(),
        pg_schema: Some((base, schema)),
    })
}

/// The key the PostgreSQL runs seal tenant secrets with (SQLite runs use
/// the key file beside their database).
pub(crate) const TEST_SECRET_KEY: &str = "kySimLsEqffIvL5CS+t03nHjkHo7DkJYfznx4pAEimk=";

impl Db {
    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("tenantatlas").unwrap();
        c.env("TENANTATLAS_DATABASE_URL", &self.url)
            .env_remove("TENANTATLAS_ENABLE_SYNTHETIC")
            .env_remove("RUST_LOG")
            .args(args);
        if self.is_postgres() {
            c.env("TENANTATLAS_SECRET_KEY", TEST_SECRET_KEY);
        } else {
            c.env_remove("TENANTATLAS_SECRET_KEY");
        }
        c
    }

    pub(crate) fn is_postgres(&self) -> bool {
        self.pg_schema.is_some()
    }

    /// The SQLite database file, on SQLite.
    pub(crate) fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        self.url.strip_prefix("sqlite://").map(std::path::PathBuf::from)
    }

    /// A scratch folder of this test's own.
    pub(crate) fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// A minimal tenant folder (`tenant.json`, no collections) named
    /// `name` in the scratch folder; answers its absolute path.
    pub(crate) fn tenant_folder(&self, name: &str) -> String {
        let root = self.dir().join(name);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(
            root.join("tenant.json"),
            r#"{"id": "6f1e8e4a-3c2b-4d7e-9a51-2f0c8b7d1a09", "displayName": "Test", "domain": "test.onmicrosoft.com", "grantedPermissions": []}"#,
        )
        .unwrap();
        root.to_str().unwrap().to_owned()
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{args:?} printed more than one JSON document ({e}): {text}"))
    }

    pub(crate) fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "nothing on stdout when failing");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "one line on stderr: {err}");
        err
    }

    pub(crate) fn add_user(&self, email: &str, password: &str, extra: &[&str]) -> Value {
        let mut args = vec!["user", "add", email, "--json"];
        args.extend_from_slice(extra);
        let out = self.cmd(&args).write_stdin(format!("{password}\n")).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub(crate) fn run_count(&self) -> usize {
        self.json(&["runs", "list", "--json", "--limit", "500"])["runs"]
            .as_array()
            .unwrap()
            .len()
    }
}

/// Runs `case` on SQLite, then on PostgreSQL when configured.
pub(crate) fn both(case: fn(&Db)) {
    case(&sqlite());
    if let Some(db) = postgres() {
        case(&db);
    }
}
