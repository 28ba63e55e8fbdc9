#!/usr/bin/env bash
# Builds the four Lambda zips Terraform deploys: target/lambda/<fn>/bootstrap.zip.
#
#   bash terraform/build-lambdas.sh            # x86_64
#   bash terraform/build-lambdas.sh --arm64    # arm64 (rustup target add aarch64-unknown-linux-gnu)
#
# Needs cargo-lambda and zig (`pip install cargo-lambda ziglang`). The `dist` profile (Cargo.toml)
# optimises for size except the aggregate path's crates, with fat LTO and panic = abort: a panic
# ends the sandbox, Lambda reports the invocation failed and retries the batch, as it would for
# a panic the runtime caught.
# bench/lambda-sizes.md has the sizes and how each setting moved them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo lambda build --profile dist --output-format zip "$@" \
    -p sluice-generate -p sluice-fetch -p sluice-aggregate -p sluice-alert
for fn in generate fetch aggregate alert; do
    zip="$CARGO_TARGET_DIR/lambda/$fn/bootstrap.zip"
    printf '%-10s %s bytes\n' "$fn" "$(stat -c %s "$zip")"
done
