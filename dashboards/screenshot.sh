#!/usr/bin/env bash
# Regenerates dashboards/screenshot.png, the README's picture of `sluice dashboard`: a fresh
# local pipeline run (20 minutes of event time, the three shipped streams), the dashboard on a
# free port, and Debian's headless chromium.
#
#   bash dashboards/screenshot.sh            # SLUICE_BIN overrides the binary
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${SLUICE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}/release/sluice}"
lake="$(mktemp -d)"
log="$(mktemp)"
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$lake" "$log"' EXIT
"$bin" run --duration 2s --history 20m --seed 7 --flush --quiet --quiet-alerts --lake "$lake"
"$bin" dashboard --lake "$lake" --port 0 >"$log" &
server=$!
for _ in $(seq 100); do grep -q http "$log" && break; sleep 0.1; done
url="$(grep -o 'http://[^ ]*' "$log")"
chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,2200 \
    --virtual-time-budget=15000 --screenshot="$PWD/dashboards/screenshot.png" "$url" 2>/dev/null
echo "dashboards/screenshot.png from $url"
