#!/usr/bin/env bash
# sluice's test command (README "Run the tests"): formatting, lints, the Rust test suites, then
# the end-to-end tests that drive the real `sluice` binary and read its output with DuckDB,
# pyarrow and a real SMTP server, then the Terraform checks.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
VENVS="${SLUICE_VENV_DIR:-$HOME/.cache/sluice-venvs}"
step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo nextest (unit, property and handler tests)"
cargo nextest run --workspace

step "build the sluice binary for the end-to-end tests"
cargo build -p sluice

step "python test environment ($VENVS/e2e)"
[ -x "$VENVS/e2e/bin/python" ] || python3 -m venv "$VENVS/e2e"
"$VENVS/e2e/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt

if [ -x terraform/checks/checkov.sh ] || [ -f terraform/checks/checkov.sh ]; then
    step "terraform: checkov"
    bash terraform/checks/checkov.sh
fi
if [ -f terraform/checks/contract.sh ]; then
    step "terraform: contract tests"
    SLUICE_BIN="$CARGO_TARGET_DIR/debug/sluice" bash terraform/checks/contract.sh
fi

step "end-to-end tests (pytest)"
SLUICE_BIN="$CARGO_TARGET_DIR/debug/sluice" "$VENVS/e2e/bin/pytest" -q tests --ignore=tests/terraform
