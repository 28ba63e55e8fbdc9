"""The local dashboard's speed: time to first paint and per refresh, on a lake of one hour of
the three shipped streams at 600 events/s in all, in headless Chromium.

    ~/.cache/sluice-venvs/e2e/bin/python bench/dashboard.py [--sluice BIN] [--lake DIR] [--refreshes N]

It makes the lake with `sluice run --history 60m --rate 200/s` (200 events/s of event time per
stream) unless --lake names one, starts `sluice dashboard` on it, loads the page, and prints one
JSON line: first paint (navigation to every tile drawn), and the median and slowest of N
refreshes (every tile's query and redraw). Figures, not a test: nothing here asserts a time."""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from browser import chromium  # noqa: E402


def main():
    default_bin = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/sluice-target")) / "release/sluice"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sluice", default=os.environ.get("SLUICE_BIN", str(default_bin)))
    parser.add_argument("--lake", help="an existing lake (default: make one hour at 600 events/s)")
    parser.add_argument("--refreshes", type=int, default=5)
    args = parser.parse_args()

    lake = args.lake
    made = None
    if lake is None:
        lake = tempfile.mkdtemp(prefix="sluice-dashboard-bench-")
        started = time.monotonic()
        subprocess.run([args.sluice, "run", "--history", "60m", "--rate", "200/s", "--duration", "1s",
                        "--flush", "--quiet", "--quiet-alerts", "--lake", lake], check=True)
        made = time.monotonic() - started
    server = subprocess.Popen([args.sluice, "dashboard", "--lake", lake, "--port", "0"],
                              stdout=subprocess.PIPE, text=True)
    url = re.search(r"http://\S+/", server.stdout.readline()).group(0)
    try:
        with chromium() as page:
            page.call("Page.navigate", url=url + "#")
            started = time.monotonic()
            page.wait_for("window.sluice && window.sluice.ready === true", timeout=600)
            first_paint_s = time.monotonic() - started
            refresh_ms = []
            for _ in range(args.refreshes):
                done = page.evaluate("window.sluice.refreshes")
                page.evaluate("(() => { const r = document.getElementById('range');"
                              " r.dispatchEvent(new Event('change')); })()")
                page.wait_for(f"window.sluice.refreshes > {done}", timeout=600)
                refresh_ms.append(page.evaluate("window.sluice.lastRefreshMs"))
            tiles = page.evaluate("window.sluice.tiles.length")
            errors = page.errors
    finally:
        server.terminate()
        server.wait(timeout=10)
    events = subprocess.run([args.sluice, "query", "--lake", lake, "--format", "csv",
                             "SELECT (SELECT COUNT(*) FROM trades) + (SELECT COUNT(*) FROM telemetry)"
                             " + (SELECT COUNT(*) FROM clickstream) AS n"],
                            capture_output=True, text=True, check=True).stdout.split()[-1]
    print(json.dumps({
        "lake_events": int(events), "lake_made_s": made and round(made, 1), "tiles": tiles,
        "first_paint_s": round(first_paint_s, 2),
        "refresh_median_ms": round(statistics.median(refresh_ms)), "refresh_max_ms": round(max(refresh_ms)),
        "console_errors": errors, "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
