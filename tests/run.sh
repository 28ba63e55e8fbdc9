#!/usr/bin/env bash
# sluice's test command (README "Two commands"): formatting, lints, the Rust test suites, then
# end-to-end tests that drive the real binaries and read their output with independent tools:
# DuckDB/pyarrow over the local lake, a real SMTP server, the Lambda binaries against moto
# server through the Lambda Runtime API, and the Terraform checks.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
VENVS="${SLUICE_VENV_DIR:-$HOME/.cache/sluice-venvs}"
export SLUICE_VENV_DIR="$VENVS"
step() { printf '\n== %s\n' "$*"; }

# A virtualenv per tool set, (re)installed only when its requirements change.
venv() {
    local name=$1 requirements=$2 dir="$VENVS/$1"
    [ -x "$dir/bin/python" ] || python3 -m venv "$dir"
    if ! cmp -s "$requirements" "$dir/.sluice-requirements"; then
        "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
        cp "$requirements" "$dir/.sluice-requirements"
    fi
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings (every feature, and the pipeline-only CLI of the README's first command)"
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo clippy -p sluice --all-targets -- -D warnings

step "python environments ($VENVS)"
venv e2e tests/requirements.txt
venv aws tests/aws/requirements.txt

step "ruff (the Python tests, fixtures, bench and dashboard generator)"
"$VENVS/e2e/bin/ruff" check --no-cache tests bench dashboards

step "cargo nextest (unit, property, handler and adapter tests; S3 conformance on moto)"
# The fault-injection harness saves a few of its lakes here; tests/test_fault_lakes.py reads
# them with DuckDB in the end-to-end step.
export SLUICE_FAULT_LAKES="${SLUICE_FAULT_LAKES:-$(mktemp -d)}"
SLUICE_MOTO_SERVER="$VENVS/aws/bin/moto_server" cargo nextest run --workspace --all-features

step "build the sluice CLI (with the query engine, feature lake) and the Lambda binaries"
cargo build --workspace --bins --all-features

if [ -f terraform/checks/checkov.sh ]; then
    step "terraform: checkov (zero failed checks)"
    bash terraform/checks/checkov.sh
fi
if [ -f terraform/checks/contract.sh ]; then
    step "terraform: contract tests against the code, Athena SQL (sqlglot) and KQL (Kusto's parser)"
    kusto="$VENVS/npm/node_modules/@kusto/language-service-next"
    [ -f "$kusto/package.json" ] || npm install --silent --no-audit --no-fund --prefix "$VENVS/npm" @kusto/language-service-next@12.4.1
    SLUICE_BIN="$CARGO_TARGET_DIR/debug/sluice" SLUICE_KUSTO_LS="$kusto" bash terraform/checks/contract.sh
fi

step "local end-to-end tests (pytest)"
# Artifacts the tests keep (the dashboard's screenshot).
export SLUICE_ARTIFACTS="${SLUICE_ARTIFACTS:-$CARGO_TARGET_DIR/test-artifacts}"
echo "artifacts: $SLUICE_ARTIFACTS"
SLUICE_BIN="$CARGO_TARGET_DIR/debug/sluice" "$VENVS/e2e/bin/pytest" -q tests --ignore=tests/terraform --ignore=tests/aws

step "reference Python handler: same raw, quarantine and window rows as sluice's aggregate (pytest)"
SLUICE_BIN="$CARGO_TARGET_DIR/debug/sluice" bash bench/run.sh --test

step "AWS end-to-end tests: Lambda binaries on moto (pytest)"
SLUICE_LAMBDA_BIN_DIR="$CARGO_TARGET_DIR/debug" SLUICE_AWS_REQUIRE_BINARIES=1 bash tests/aws/run.sh
