#!/usr/bin/env bash
# The JSON API against its own OpenAPI document: schemathesis (PyPI, in a
# virtualenv of its own) runs every check on every operation of a live
# `tenantatlas demo` (fresh SQLite), as the demo's workspace owner, with a
# bounded number of examples and a fixed seed. Zero failures is the bar.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${TENANTATLAS_BIN:-target/debug/tenantatlas}"
venv="target/schemathesis-venv"
version="4.32.5"
if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/schemathesis" --version | grep -q "$version"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

dir="$(mktemp -d)"
port=$((19000 + $$ % 1000))
export TENANTATLAS_DATABASE_URL="sqlite://$dir/demo.db"
RUST_LOG=warn "$bin" demo --bind "127.0.0.1:$port" >"$dir/demo.out" 2>"$dir/demo.err" &
demo=$!
trap 'kill $demo 2>/dev/null || true; wait $demo 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 300); do
    grep -q "the hub listens on" "$dir/demo.err" && break
    kill -0 $demo 2>/dev/null || { cat "$dir/demo.err" >&2; exit 1; }
    sleep 0.2
done
token="$("$bin" token create owner@demo.example --name schemathesis)"

# Two passes: revoking tokens last, since a revoke reached through the
# token list can revoke the very token the run authenticates with, and
# every operation after it would only ever see 401.
st() {
    "$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/v1/openapi.json" \
        --header "Authorization: Bearer $token" \
        --checks all \
        --max-examples 30 \
        --seed 20261203 \
        --workers 2 \
        --no-color "$@"
}
st --exclude-path-regex '/revoke$'
st --include-path-regex '/revoke$'
