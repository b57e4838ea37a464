#!/usr/bin/env bash
# The whole test suite, as CI runs it (README: "Quick start"). Installs what the tests need when
# it is missing (Postfix, Dovecot, OpenSSL headers, poppler-utils, PostgreSQL), then checks the
# formatting and lints and runs every test: unit tests, the storage tests on SQLite and
# PostgreSQL, and the end-to-end tests through a private Postfix and Dovecot.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then
  scripts/install-test-deps.sh
else
  echo "scripts/test.sh: not root: skipping package installation" >&2
fi
command -v cargo >/dev/null || { echo "scripts/test.sh: cargo not found" >&2; exit 1; }

pg=$(scripts/ensure-postgres.sh)
if [ "$pg" = ready ]; then
  export TELEAVIS_REQUIRE_POSTGRES=1
else
  cat >&2 <<'NOTICE'
################################################################################
## NOTICE: PostgreSQL is not available on 127.0.0.1:5432 and could not be
## installed or started: the PostgreSQL half of the storage and end-to-end tests
## is SKIPPED (each skipped test prints a NOTICE). SQLite tests still run.
################################################################################
NOTICE
fi

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test" >&2
cargo test --all-targets --locked
