#!/usr/bin/env bash
# Runs the whole test suite, setting up what it needs first: PostgreSQL,
# Debian's Chromium and the npm packages of the browser tests.
#
# PostgreSQL: when it is installed but down, it is started; when it answers,
# the PostgreSQL half of the suite runs too (TENANTATLAS_TEST_POSTGRES_URL).
# Without it the suite runs on SQLite alone and says so.
# TENANTATLAS_REQUIRE_POSTGRES=1 turns "no PostgreSQL" into a failure (CI).
set -euo pipefail
cd "$(dirname "$0")/.."

pg_url="${TENANTATLAS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

pg_up() {
    command -v psql >/dev/null 2>&1 && psql "$pg_url" -qAtc 'SELECT 1' >/dev/null 2>&1
}

if ! pg_up && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    echo "starting PostgreSQL ${version}"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do
        pg_up && break
        sleep 1
    done
fi

if pg_up; then
    export TENANTATLAS_TEST_POSTGRES_URL="$pg_url"
    echo "PostgreSQL answers: the suite runs on SQLite and PostgreSQL"
elif [ "${TENANTATLAS_REQUIRE_POSTGRES:-0}" = 1 ]; then
    echo "error: PostgreSQL is required (TENANTATLAS_REQUIRE_POSTGRES=1) but does not answer" >&2
    exit 1
else
    unset TENANTATLAS_TEST_POSTGRES_URL
    echo "PostgreSQL does not answer: the suite runs on SQLite only"
fi

# The browser tests need Debian's Chromium and playwright-core (npm).
if [ ! -x /usr/bin/chromium ]; then
    echo "installing Debian's chromium for the browser tests"
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null \
            || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null; }
    else
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null
    fi
fi
(cd tests/browser && npm ci --no-audit --no-fund --silent)

cargo test --workspace --locked

# The hub in a real browser, against the binary the tests just built.
cargo build --locked -p tenantatlas
# The API against its OpenAPI document (schemathesis, every check).
scripts/schemathesis.sh
node tests/browser/hub.mjs
# ... and on PostgreSQL (LISTEN/NOTIFY feeding the live widget), in an
# empty schema of its own
if [ -n "${TENANTATLAS_TEST_POSTGRES_URL:-}" ]; then
    schema="browser_$$_$(date +%s)"
    psql "$TENANTATLAS_TEST_POSTGRES_URL" -qc "CREATE SCHEMA $schema"
    trap 'psql "$TENANTATLAS_TEST_POSTGRES_URL" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true' EXIT
    case "$TENANTATLAS_TEST_POSTGRES_URL" in *\?*) sep='&' ;; *) sep='?' ;; esac
    TENANTATLAS_BROWSER_DATABASE_URL="${TENANTATLAS_TEST_POSTGRES_URL}${sep}options=-csearch_path%3D${schema}" \
        node tests/browser/hub.mjs
fi
