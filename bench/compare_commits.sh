#!/usr/bin/env bash
# The aggregate path of two commits, back to back on one machine: events/s and peak RSS of
# `sluice bench aggregate` on the same 10,000-trade Lambda batch (made by the newer binary).
#
#   bash bench/compare_commits.sh OLD [NEW]     # NEW defaults to the work tree's HEAD
#
# OLD is checked out in a temporary git worktree; both are built with `cargo build --release -p
# sluice` into the same target directory (dependencies are built once). Each binary is timed
# --rounds times, alternating, and the best run of each is reported, with the ratio.
set -euo pipefail
old=${1:?usage: compare_commits.sh OLD [NEW]}
new=${2:-HEAD}
rounds=${ROUNDS:-3}
repo="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
work="$(mktemp -d)"
trap 'git -C "$repo" worktree remove --force "$work/old" >/dev/null 2>&1 || true; git -C "$repo" worktree remove --force "$work/new" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

build() { # commit dir → path of its release binary
    git -C "$repo" worktree add --detach "$2" "$1" >/dev/null 2>&1
    (cd "$2" && cargo build --release -p sluice --bin sluice >&2)
    cp "$CARGO_TARGET_DIR/release/sluice" "$work/sluice-$(basename "$2")"
    echo "$work/sluice-$(basename "$2")"
}

echo "building $old and $new (release)…" >&2
old_bin=$(build "$old" "$work/old")
new_bin=$(build "$new" "$work/new")
"$new_bin" bench make-event --scenario trades --records 10000 --output "$work/trades-10k.json" 2>/dev/null

best() { # binary → best events/s and the peak RSS of that run, as JSON
    "$1" bench aggregate --event "$work/trades-10k.json" --repeat 5
}
declare -A rate rss
for _ in $(seq "$rounds"); do
    for side in old new; do
        bin_var="${side}_bin"
        line=$(best "${!bin_var}" | tail -n 1)
        r=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["events_per_s"])' "$line")
        m=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["peak_rss_mb"])' "$line")
        if [ -z "${rate[$side]:-}" ] || python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)" "$r" "${rate[$side]}"; then
            rate[$side]=$r
            rss[$side]=$m
        fi
    done
done
python3 - "$old" "$new" "${rate[old]}" "${rss[old]}" "${rate[new]}" "${rss[new]}" <<'PY'
import sys
old, new, ro, mo, rn, mn = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
print(f"{'commit':12} {'events/s':>12} {'peak RSS MB':>12}")
print(f"{old[:12]:12} {ro:12,.0f} {mo:12.1f}")
print(f"{new[:12]:12} {rn:12,.0f} {mn:12.1f}")
print(f"new/old throughput: {rn / ro:.3f}")
PY
