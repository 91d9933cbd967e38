#!/usr/bin/env bash
# A first session on the embedded default (an SQLite file): builds the
# binary, then creates a workspace, a tenant, a user and a run, and shows it.
# Run from anywhere; the database is ./tenantatlas.db in the working
# directory unless TENANTATLAS_DATABASE_URL says otherwise.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --locked --manifest-path "$root/Cargo.toml" -p tenantatlas
ta() { "$root/target/release/tenantatlas" "$@"; }

# Each step runs once: what exists is looked up first, so a real error
# (a bad URL, a locked database) stops the script instead of being hidden.
if ! ta workspace list --json | grep -q '"name": "Contoso MSP"'; then
    ta workspace create "Contoso MSP"
fi
if ! ta tenant list --workspace "Contoso MSP" --json | grep -q '"name": "Contoso Prod"'; then
    # a copy of the demo tenant: a directory tenant's writes go beside its folder
    mkdir -p tenants && [ -e tenants/contoso ] || cp -r "$root/fixtures/tenants/contoso" tenants/
    ta tenant add --workspace "Contoso MSP" "Contoso Prod" --provider "directory:./tenants/contoso"
fi
if ! ta user list --json | grep -q '"email": "ops@contoso.example"'; then
    echo "correct horse battery staple" | ta user add ops@contoso.example
fi
ta member add --workspace "Contoso MSP" ops@contoso.example --role operator
ta tenant verify "Contoso Prod"
# the only tenant operation this build executes is the synthetic workload
ta --enable-synthetic run start synthetic --tenant "Contoso Prod" --param units=20 --param unit_ms=100 --as ops@contoso.example
ta runs list --tenant "Contoso Prod"
id="$(ta runs list --tenant "Contoso Prod" --limit 1 --json | sed -n 's/.*"id": "\([0-9a-f-]*\)".*/\1/p' | head -n 1)"
ta runs show "$id"
