#!/usr/bin/env bash
# How the aggregate path scales: events/s (one core, best of 5) and peak RSS by batch size, by
# keys and by the window rows a batch closes, as a Markdown table (the README's).
#
#   bash bench/scaling.sh [SLUICE_BIN]
#
# Default binary: the Lambda's profile, ${CARGO_TARGET_DIR:-~/.cache/sluice-target}/dist/sluice
# (`cargo build --profile dist -p sluice`). Batches come from `sluice bench make-event`.
set -euo pipefail
bin="${1:-${SLUICE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}/dist/sluice}}"
[ -x "$bin" ] || { echo "no sluice binary at $bin (cargo build --profile dist -p sluice)" >&2; exit 1; }
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
row() {
    local label=$1
    shift
    "$bin" bench make-event "$@" --output "$dir/event.json" 2>/dev/null
    "$bin" bench aggregate --event "$dir/event.json" --repeat 5 | python3 -c "
import json, sys
d = json.load(sys.stdin)
rate, rss, windows = d['events_per_s'], d['peak_rss_mb'], d['windows']
print(f'| {sys.argv[1]} | {rate:,.0f} | {rss:.0f} MB | {windows:,} |')" "$label"
}
echo "| batch (trades) | events/s | peak RSS | window rows closed |"
echo "|---|---:|---:|---:|"
row "1,000, 1 s of event time" --records 1000
row "7,500 over 5 keys, 30 minutes (window-heavy)" --records 7500 --keys 5 --rate 4.1666667
row "10,000, 10 s" --records 10000
row "10,000 over 5 keys, 8 minutes" --records 10000 --keys 5 --rate 20.833333
row "10,000 over 500 keys, 8 minutes" --records 10000 --keys 500 --rate 20.833333
row "10,000 over 10,000 keys, 8 minutes" --records 10000 --keys 10000 --rate 20.833333
