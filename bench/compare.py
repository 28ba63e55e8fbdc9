#!/usr/bin/env python3
"""Run sluice's aggregate handler and the reference Python handler on the same Kinesis batches:
check their outputs are equal, and time both.

    python bench/compare.py [--scenario trades] [--sizes 1000,10000] [--large] [--rate 20]
                            [--repeat 5] [--json] [--keep DIR]

Per scenario and batch size:
1. `$SLUICE_BIN bench make-event` writes the batch (a KinesisEvent as Lambda delivers it).
2. `$SLUICE_BIN invoke aggregate --event F --lake DIR` (fresh DIR) writes sluice's objects;
   `reference_handler.process_batch` produces the Python ones in memory. Raw, late and quarantine
   rows and every window's key and aggregates must be equal (floats within 1e-9 relative), and
   both must write the same object keys (anomalies excepted: the detectors differ on purpose).
3. `$SLUICE_BIN bench aggregate --event F --repeat N` times sluice in-process. Its clock starts
   at the payload's bytes (functions/cli/src/bench.rs): Kinesis JSON and base64 → decode →
   validate → windows → detectors → Parquet bytes.
4. A fresh Python process times `reference_handler.handler(event, None)` on the event dict, as
   Lambda's Python runtime hands it over (envelope already parsed, base64 not yet decoded), up to
   Parquet bytes in memory; best of N, like sluice. It also times `json.loads` of the file, and
   reports events/s including that parse, for a reader who wants the envelope counted.
   Peak RSS is VmHWM of each process, as sluice reports it; Python's includes the interpreter,
   pandas and pyarrow (their share is printed as the baseline after imports).

Exit status: 0 if every batch matched, 1 on a mismatch (with a diff), 2 on a setup error.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

DEFAULT_BIN = os.path.expanduser("~/.cache/sluice-target/release/sluice")
REL_TOL = 1e-9
WINDOW_KEY = ["scenario", "key", "window_name", "window_start", "window_end", "metric"]
WINDOW_FLOATS = ["sum", "min", "max", "avg", "stddev", "first", "last", "weighted_avg",
                 "m2", "weighted_sum", "weight_total"]
# Selections, not arithmetic: these must be bit-for-bit equal.
EXACT_FLOATS = {"min", "max", "first", "last"}


class SetupError(Exception):
    pass


def sluice_bin() -> str:
    path = os.environ.get("SLUICE_BIN") or DEFAULT_BIN
    if not os.access(path, os.X_OK):
        raise SetupError(f"sluice binary {path} not found (set SLUICE_BIN)")
    return path


def _run(args: list, **kw) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, **kw)
    if proc.returncode != 0 and "unrecognized subcommand 'bench'" in proc.stderr:
        raise SetupError(f"{args[0]} predates `sluice bench` (commit de90d33): rebuild it "
                         "(cargo build --release) or point SLUICE_BIN at a newer build")
    if proc.returncode != 0:
        raise SetupError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr.strip()}")
    return proc.stdout


def make_event(scenario: str, records: int, rate: float, path: Path, seed: int = 42,
               keys: int | None = None) -> Path:
    _run([sluice_bin(), "bench", "make-event", "--scenario", scenario, "--records", str(records),
          "--rate", str(rate), "--seed", str(seed), "--output", str(path),
          *(["--keys", str(keys)] if keys else [])])
    return path


def sluice_objects(event_path: Path, lake: Path) -> dict:
    """Objects sluice's handler writes for one batch into an empty lake: key → bytes."""
    if lake.exists():
        shutil.rmtree(lake)
    out = _run([sluice_bin(), "invoke", "aggregate", "--event", str(event_path), "--lake", str(lake)])
    if json.loads(out).get("batchItemFailures"):
        raise SetupError(f"sluice reported failed records: {out}")
    return {p.relative_to(lake).as_posix(): p.read_bytes()
            for p in sorted(lake.rglob("*.parquet"))}


def sluice_bench(event_path: Path, repeat: int) -> dict:
    out = _run([sluice_bin(), "bench", "aggregate", "--event", str(event_path), "--repeat", str(repeat)])
    return json.loads(out.strip().splitlines()[-1])


def python_objects(event: dict) -> tuple[dict, dict]:
    import reference_handler as rh
    result = rh.process_batch(event)
    return result.objects, result.stats


# --- comparison ---------------------------------------------------------------------------------


@dataclass
class Report:
    diffs: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.diffs

    def text(self, limit: int = 40) -> str:
        lines = [f"{len(self.diffs)} difference(s):"] + [f"  {d}" for d in self.diffs[:limit]]
        if len(self.diffs) > limit:
            lines.append(f"  ... and {len(self.diffs) - limit} more")
        return "\n".join(lines)


def _table_of(key: str) -> tuple[str, str]:
    parts = key.split("/")
    scenario = next((p.split("=", 1)[1] for p in parts if p.startswith("scenario=")), "?")
    return parts[0], scenario


def _frames(objects: dict):
    """Per lake table, one DataFrame of every object's rows plus its `scenario` partition."""
    import pandas as pd
    import pyarrow.parquet as pq
    tables: dict = {}
    for key, body in objects.items():
        table, scenario = _table_of(key)
        df = pq.read_table(io.BytesIO(body)).to_pandas()
        df.insert(0, "scenario", scenario)
        df["_object"] = key
        tables.setdefault(table, []).append(df)
    return {t: pd.concat(dfs, ignore_index=True) for t, dfs in tables.items()}


def _seq_sorted(df):
    return df.assign(_n=df["sequence_number"].map(int)).sort_values(["shard_id", "_n"]).drop(
        columns="_n").reset_index(drop=True)


def _close(a: float, b: float, scale: float) -> bool:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or (
            isinstance(b, float) and math.isnan(b)):
        return (a is None or a != a) and (b is None or b != b)
    return abs(a - b) <= REL_TOL * max(abs(a), abs(b), scale)


def compare_objects(sluice: dict, python: dict) -> Report:
    """Equality of two lakes' objects for one batch (anomalies excluded)."""
    import pandas as pd
    report = Report()
    # Anomalies come from other detectors; the pipeline table is sluice's own bookkeeping.
    skip = {"anomalies", "pipeline"}
    s_keys = {k for k in sluice if _table_of(k)[0] not in skip}
    p_keys = {k for k in python if _table_of(k)[0] not in skip}
    for k in sorted(s_keys - p_keys):
        report.diffs.append(f"object only sluice wrote: {k}")
    for k in sorted(p_keys - s_keys):
        report.diffs.append(f"object only python wrote: {k}")
    s = _frames({k: sluice[k] for k in s_keys})
    p = _frames({k: python[k] for k in p_keys})

    # Raw, late and quarantine: row for row, by sequence number. Quarantine `reason` texts are
    # serde's and Python's error messages and are not compared; reason_code is.
    for table, ignore in (("raw", {"_object"}), ("late", {"_object"}),
                          ("quarantine", {"_object", "reason"})):
        a, b = s.get(table), p.get(table)
        na, nb = (0 if a is None else len(a)), (0 if b is None else len(b))
        report.counts[table] = na
        if na != nb:
            report.diffs.append(f"{table}: sluice has {na} rows, python {nb}")
            continue
        if na == 0:
            continue
        a, b = _seq_sorted(a), _seq_sorted(b)
        for col in a.columns:
            if col in ignore:
                continue
            if col not in b.columns:
                report.diffs.append(f"{table}: column {col} missing in python's output")
                continue
            x, y = a[col], b[col]
            same = (x == y) | (x.isna() & y.isna())
            for i in list(same[~same].index)[:10]:
                report.diffs.append(f"{table} seq {a.at[i, 'sequence_number']} {col}: "
                                    f"sluice {x[i]!r} python {y[i]!r}")

    # Windows: by (scenario, key, window, start, end, metric).
    a, b = s.get("windows"), p.get("windows")
    if a is None and b is None:
        report.counts["windows"] = 0
        return report
    empty = pd.DataFrame(columns=(a if a is not None else b).columns)
    a = a if a is not None else empty
    b = b if b is not None else empty
    report.counts["windows"] = len(a)
    for name, df in (("sluice", a), ("python", b)):
        dup = df.duplicated(WINDOW_KEY)
        if dup.any():
            report.diffs.append(f"{name} wrote {int(dup.sum())} duplicate window rows, e.g. "
                                f"{df[dup].iloc[0][WINDOW_KEY].to_dict()}")
    m = a.merge(b, on=WINDOW_KEY, how="outer", suffixes=("_s", "_p"), indicator=True)
    for _, row in m[m["_merge"] != "both"].head(20).iterrows():
        who = "sluice" if row["_merge"] == "left_only" else "python"
        report.diffs.append(f"window only {who} has: " + _label(row))
    extra = int((m["_merge"] != "both").sum()) - 20
    if extra > 0:
        report.diffs.append(f"... and {extra} more windows on one side only")
    both = m[m["_merge"] == "both"]
    shown = 0
    for _, row in both.iterrows():
        bad = []
        if row["window_kind_s"] != row["window_kind_p"]:
            bad.append(f"window_kind {row['window_kind_s']} vs {row['window_kind_p']}")
        if row["count_s"] != row["count_p"]:
            bad.append(f"count {row['count_s']} vs {row['count_p']}")
        if row["_object_s"] != row["_object_p"]:
            bad.append(f"object {row['_object_s']} vs {row['_object_p']}")
        scale = max(abs(row["min_s"]), abs(row["max_s"]))
        for c in WINDOW_FLOATS:
            x, y = row[f"{c}_s"], row[f"{c}_p"]
            if c in EXACT_FLOATS:
                ok = x == y
            else:
                spread = scale * scale * row["count_s"] if c == "m2" else scale
                ok = _close(x, y, spread if c in ("sum", "avg", "stddev", "m2", "weighted_sum") else 0.0)
            if not ok:
                bad.append(f"{c} {x!r} vs {y!r}")
        if bad:
            shown += 1
            if shown <= 20:
                report.diffs.append(f"window {_label(row)}: " + "; ".join(bad) + "  (sluice vs python)")
    if shown > 20:
        report.diffs.append(f"... and {shown - 20} more windows with different aggregates")
    return report


def _label(row) -> str:
    start = int(row["window_start"].timestamp() * 1000)
    end = int(row["window_end"].timestamp() * 1000)
    return (f"{row['scenario']} {row['key']} {row['window_name']} "
            f"[{_iso(start)}, {_iso(end)}) {row['metric']}")


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


# --- timing -------------------------------------------------------------------------------------


def _vmhwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(event_path: str, repeat: int) -> dict:
    """Runs in a fresh process: times the Python handler on one file and reports its peak RSS."""
    import reference_handler as rh
    import gc
    baseline = _vmhwm_mb()
    raw = Path(event_path).read_bytes()
    best_parse = math.inf
    event = None
    for _ in range(repeat):
        event = None
        gc.collect()
        started = time.perf_counter()
        event = json.loads(raw)
        best_parse = min(best_parse, time.perf_counter() - started)
    del raw
    records = len(event["Records"])
    best = math.inf
    for _ in range(repeat):
        rh.STORE.clear()
        gc.collect()
        started = time.perf_counter()
        response = rh.handler(event, None)
        best = min(best, time.perf_counter() - started)
    assert response == {"batchItemFailures": []}
    stats = rh.process_batch(event).stats
    return {
        "function": "reference_python_aggregate",
        "records": records,
        **stats,
        "objects": len(rh.STORE),
        "parquet_bytes": sum(len(b) for b in rh.STORE.values()),
        "seconds": best,
        "events_per_s": records / best,
        "envelope_parse_seconds": best_parse,
        "events_per_s_incl_parse": records / (best + best_parse),
        "peak_rss_mb": _vmhwm_mb(),
        "baseline_rss_mb": baseline,
    }


def python_bench(event_path: Path, repeat: int) -> dict:
    out = _run([sys.executable, str(Path(__file__).resolve()), "--worker", str(event_path),
                "--repeat", str(repeat)], env={**os.environ, "REFERENCE_LAKE": ""})
    return json.loads(out.strip().splitlines()[-1])


# --- main ---------------------------------------------------------------------------------------


# The window-heavy batch of the performance issue: 7,500 trades over 5 symbols and 30 minutes of
# event time (a full Lambda batch nobody tuned for; many windows close in it).
WINDOW_HEAVY = {"records": 7_500, "rate": 7_500 / 1_800, "keys": 5}


def run_one(scenario: str, records: int, rate: float, repeat: int, workdir: Path,
            keys: int | None = None, label: str | None = None) -> tuple[dict, Report]:
    name = f"{scenario}-{records}" + (f"-{keys}keys-{rate:g}per_s" if keys else "")
    event_path = make_event(scenario, records, rate, workdir / f"{name}.json", keys=keys)
    lake = workdir / f"lake-{name}"
    s_objects = sluice_objects(event_path, lake)
    p_objects, p_stats = python_objects(json.loads(event_path.read_bytes()))
    report = compare_objects(s_objects, p_objects)
    s = sluice_bench(event_path, repeat)
    for k in ("events", "quarantined", "windows"):
        if s.get(k) != p_stats.get(k):
            report.diffs.append(f"stats: sluice bench counts {k}={s.get(k)}, python {p_stats.get(k)}")
    py = python_bench(event_path, repeat)
    row = {
        "scenario": label or scenario, "records": records, "rate_per_s": rate, "keys": keys,
        "events": s["events"], "late": p_stats["late"], "quarantined": s["quarantined"],
        "windows": s["windows"], "windows_compared": report.counts.get("windows", 0),
        "sluice_events_per_s": s["events_per_s"], "python_events_per_s": py["events_per_s"],
        # Like with like: both clocks start at the payload's bytes.
        "ratio": s["events_per_s"] / py["events_per_s_incl_parse"],
        "python_events_per_s_incl_parse": py["events_per_s_incl_parse"],
        "sluice_peak_rss_mb": s["peak_rss_mb"], "python_peak_rss_mb": py["peak_rss_mb"],
        "python_baseline_rss_mb": py["baseline_rss_mb"],
        "sluice_seconds": s["seconds"], "python_seconds": py["seconds"],
        "equal": report.ok,
    }
    return row, report


def print_table(rows: list, meta: dict) -> None:
    debug = "  (DEBUG BUILD: its timings are not representative)" if meta["debug_build"] else ""
    print(f"sluice: {meta['sluice_bin']}{debug}")
    print(f"batches: `sluice bench make-event --rate {meta['rate_per_s']:g}`; "
          f"best of {meta['repeat']} runs each; "
          "events/s on one core; trades-wh: the window-heavy batch (7,500 trades, 5 symbols, "
          "30 minutes of event time)")
    head = ("scenario", "records", "windows", "sluice ev/s", "python ev/s", "ratio",
            "py+parse ev/s", "sluice RSS", "python RSS", "equal")
    fmt = "{:<12}{:>9}{:>9}{:>13}{:>13}{:>8}{:>15}{:>12}{:>18}{:>7}"
    print(fmt.format(*head))
    for r in rows:
        print(fmt.format(
            r["scenario"], f"{r['records']:,}", f"{r['windows']:,}",
            f"{r['sluice_events_per_s']:,.0f}", f"{r['python_events_per_s']:,.0f}",
            f"{r['ratio']:.1f}x", f"{r['python_events_per_s_incl_parse']:,.0f}",
            f"{r['sluice_peak_rss_mb']:.0f} MB",
            f"{r['python_peak_rss_mb']:.0f} MB ({r['python_baseline_rss_mb']:.0f})",
            "yes" if r["equal"] else "NO"))
    print("python RSS: peak (after imports alone). sluice times the payload's bytes → Parquet "
          "(Kinesis JSON, base64 included);\npython times handler(event dict) incl. base64; "
          "py+parse adds json.loads of the whole Lambda payload; ratio = sluice / py+parse.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="trades", help="trades, telemetry, clickstream or all")
    ap.add_argument("--sizes", default="1000,10000", help="comma-separated batch sizes")
    ap.add_argument("--large", action="store_true", help="also a 100,000-record batch")
    ap.add_argument("--rate", type=float, default=20.0,
                    help="events/s of event time in the batch (default 20: 10k records span "
                         "~8 minutes, so windows of every kind close)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-window-heavy", action="store_true",
                    help="leave out the window-heavy trades batch (7,500 trades, 5 symbols, 30 min)")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    ap.add_argument("--keep", metavar="DIR", help="keep batches and sluice's lakes in DIR")
    ap.add_argument("--worker", metavar="EVENT", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, args.repeat)))
        return 0
    scenarios = ["trades", "telemetry", "clickstream"] if args.scenario == "all" else args.scenario.split(",")
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    if args.large and 100_000 not in sizes:
        sizes.append(100_000)
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows, failed = [], False
    try:
        binary = sluice_bin()
        for scenario in scenarios:
            for n in sizes:
                row, report = run_one(scenario, n, args.rate, args.repeat, workdir)
                rows.append(row)
                if not report.ok:
                    failed = True
                    print(f"MISMATCH {scenario} {n} records:\n{report.text()}", file=sys.stderr)
                elif not args.json:
                    counts = ", ".join(f"{v} {k}" for k, v in report.counts.items())
                    print(f"{scenario} {n}: equal ({counts})", file=sys.stderr, flush=True)
        if "trades" in scenarios and not args.no_window_heavy:
            w = WINDOW_HEAVY
            row, report = run_one("trades", w["records"], w["rate"], args.repeat, workdir,
                                  keys=w["keys"], label="trades-wh")
            rows.append(row)
            if not report.ok:
                failed = True
                print(f"MISMATCH window-heavy batch:\n{report.text()}", file=sys.stderr)
            elif not args.json:
                print(f"trades window-heavy {w['records']}: equal", file=sys.stderr, flush=True)
    except SetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    meta = {"sluice_bin": binary, "debug_build": "/debug/" in binary, "rate_per_s": args.rate,
            "repeat": args.repeat, "python": sys.version.split()[0],
            "timed": {"sluice": "payload bytes: Kinesis JSON, base64, decode, validate, windows, "
                                "detectors, Parquet bytes",
                      "python": "handler(event dict): base64, json per record, validate, windows, "
                                "z-score, Parquet bytes; envelope json.loads excluded "
                                "(included in python_events_per_s_incl_parse)"}}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=2))
    else:
        print_table(rows, meta)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
