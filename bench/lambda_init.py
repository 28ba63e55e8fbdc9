#!/usr/bin/env python3
"""Cold-start init time of the four sluice Lambda binaries (generate, fetch, aggregate, alert).

Init time is measured the way the Lambda service sees it: from the moment the bootstrap process
is spawned to the moment its first `GET /2018-06-01/runtime/invocation/next` reaches the Runtime
API, i.e. when the runtime says "ready for the first event". Everything `main` does before
`lambda_runtime::run` polls is inside that interval: dynamic loading, the tokio runtime, reading
the SLUICE_* environment, loading the AWS SDK configuration, building clients, and any network
call made at init (fetch reads its API key from Secrets Manager; alert reads its rules from S3
when SLUICE_RULES_KEY is set).

The Runtime API is the repository's emulator (tests/aws/runtime_api.py), the AWS services a
moto server on 127.0.0.1 (tests/aws/aws_helpers.py creates the stream, bucket and topic). Each
function gets the environment Terraform gives it (terraform/modules/aws/lambda.tf, defaults of
variables.tf) plus the variables Lambda sets for a custom runtime.

    python bench/lambda_init.py                      # zips in ~/.cache/sluice-target/lambda
    python bench/lambda_init.py --runs 50 --json     # one JSON document on stdout
    python bench/lambda_init.py --bin-dir ~/.cache/sluice-target/debug
    python bench/lambda_init.py --zip-dir target/lambda --functions aggregate,alert

Binaries: `<zip-dir>/<fn>/bootstrap.zip` (from `cargo lambda build --profile dist
--output-format zip`), whose `bootstrap` is unpacked into a temporary directory; or, with
`--bin-dir DIR`, the plain executables `DIR/<fn>`. A missing binary is an error (exit 2).

Every process is started once untimed (the "probe", which also warms the page cache, as a
re-used Lambda host would have it) and then `--runs` times, the functions interleaved so that
background load hits them alike. The probe records which AWS API calls the init makes (moto's
request recorder) and, when `strace` is available, every connect() the process makes before it
polls for its first event, so a call to anything but the Runtime API and the endpoint shows.

Baselines, for the reader to subtract:
- `true`: spawn of /bin/true until it has exited (fork/exec/exit cost on this machine).
- `null-runtime`: a 20-line C program (compiled here with `cc`, skipped without one) that only
  connects to the Runtime API and sends GET /next, timed exactly like the functions: the floor
  of spawn + dynamic loading + one loopback HTTP request + the emulator's own latency.

Also reported per function: CPU time (user+sys) the process used until it was stopped just after
its first poll, and its peak RSS (both from wait4). On Lambda, below 1,769 MB of memory a
function gets a fraction of a vCPU, so init *wall* time there is at least CPU time / fraction.

Not measured: what Lambda does before the process starts (placing the sandbox, downloading and
unpacking the zip), TLS handshakes and real-network latency of init calls (moto here is plain
HTTP on loopback), and a CPU slower or faster than this machine's.

Exit status: 0 on success, 2 when a binary is missing or a dependency is not installed, 1 when
a function failed to initialise (its output is printed).

Run it with the AWS test virtualenv, which has boto3 and moto[server]:
    ~/.cache/sluice-venvs/aws/bin/python bench/lambda_init.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from dataclasses import dataclass, field
from typing import Optional

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "aws"))

from runtime_api import RuntimeApi, lambda_environment  # noqa: E402  (stdlib only)

FUNCTIONS = ("generate", "fetch", "aggregate", "alert")
TARGET = pathlib.Path(os.environ.get("SLUICE_TARGET_DIR", pathlib.Path.home() / ".cache" / "sluice-target"))
DEFAULT_ZIP_DIR = TARGET / "lambda"

# terraform/modules/aws/variables.tf: lambda_memory_mb defaults. Lambda passes the configured
# size as AWS_LAMBDA_FUNCTION_MEMORY_SIZE; it does not change anything locally.
MEMORY_MB = {"generate": 256, "fetch": 256, "aggregate": 1024, "alert": 256}
RULES_KEY = "config/rules.toml"

NULL_RUNTIME_C = r"""
/* The least a custom runtime can do before its first event: connect to the Runtime API and
   ask for the next invocation. Used as the baseline of bench/lambda_init.py. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!api) return 1;
    char host[256];
    strncpy(host, api, sizeof host - 1);
    host[sizeof host - 1] = 0;
    char *colon = strchr(host, ':');
    if (!colon) return 1;
    *colon = 0;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) return 1;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) return 1;
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: %s\r\n\r\n", api);
    if (write(s, req, n) != n) return 1;
    char buf[4096];
    while (read(s, buf, sizeof buf) > 0) {}  /* block until the event, or until killed */
    return 0;
}
"""


class Fatal(Exception):
    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


# ------------------------------------------------------------------------------ Runtime API

class InitTimingApi(RuntimeApi):
    """The repository's Runtime API emulator, noting when the first GET /next arrived."""

    def __init__(self, function_name: str):
        self.first_next_ns: Optional[int] = None
        self.first_next = threading.Event()
        super().__init__(function_name)

    def _next(self):
        # Called by the emulator's do_GET for /invocation/next, once the request is parsed.
        if self.first_next_ns is None:
            self.first_next_ns = time.perf_counter_ns()
            self.first_next.set()
        return super()._next()


# --------------------------------------------------------------------------------- binaries

@dataclass
class Binary:
    function: str
    path: pathlib.Path
    binary_bytes: int
    zip_path: Optional[pathlib.Path] = None
    zip_bytes: Optional[int] = None
    zip_mtime: Optional[str] = None


def resolve_binaries(functions, zip_dir: pathlib.Path, bin_dir: Optional[pathlib.Path],
                     unpack_dir: pathlib.Path) -> dict[str, Binary]:
    found, missing = {}, []
    for fn in functions:
        if bin_dir is not None:
            p = bin_dir / fn
            if not (p.is_file() and os.access(p, os.X_OK)):
                missing.append(f"{fn}: no executable {p}")
                continue
            found[fn] = Binary(fn, p, p.stat().st_size)
            continue
        z = zip_dir / fn / "bootstrap.zip"
        if not z.is_file():
            missing.append(f"{fn}: no zip {z}")
            continue
        try:
            with zipfile.ZipFile(z) as archive:
                info = archive.getinfo("bootstrap")
                out = unpack_dir / fn
                out.mkdir(parents=True, exist_ok=True)
                archive.extract(info, out)
        except (KeyError, zipfile.BadZipFile) as e:
            missing.append(f"{fn}: {z} has no readable 'bootstrap' ({e})")
            continue
        p = out / "bootstrap"
        p.chmod(0o755)
        found[fn] = Binary(fn, p, info.file_size, z, z.stat().st_size,
                           time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(z.stat().st_mtime)))
    if missing:
        how = ("build them with `cargo build -p sluice-<fn> --features sluice-<fn>/lambda` or pass "
               "another --bin-dir") if bin_dir is not None else (
               "build them with `cargo lambda build --profile dist --output-format zip -p sluice-generate "
               "-p sluice-fetch -p sluice-aggregate -p sluice-alert` and pass --zip-dir <target>/lambda, "
               "or use --bin-dir with plain binaries")
        raise Fatal("missing Lambda binaries:\n  " + "\n  ".join(missing) + f"\n{how}")
    return found


def build_null_runtime(work: pathlib.Path) -> Optional[pathlib.Path]:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        return None
    src, exe = work / "null_runtime.c", work / "null_runtime"
    src.write_text(NULL_RUNTIME_C)
    r = subprocess.run([cc, "-O2", "-o", str(exe), str(src)], capture_output=True, text=True)
    return exe if r.returncode == 0 else None


# ------------------------------------------------------------------------------------ moto

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """moto server on 127.0.0.1:<free port>, its request recorder writing to a temp file."""

    def __init__(self, work: pathlib.Path):
        self.log = work / "moto.log"
        self.recording = work / "moto-recording.jsonl"
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, MOTO_RECORDER_FILEPATH=str(self.recording))
        env.pop("MOTO_ENABLE_RECORDING", None)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise Fatal(f"moto server did not start; log:\n{self.log.read_text(errors='replace')[-4000:]}", 1)

    def _recorder(self, action: str) -> bytes:
        req = urllib.request.Request(f"{self.endpoint}/moto-api/recorder/{action}", method="POST"
                                     if action != "download-recording" else "GET")
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def start_recording(self) -> None:
        self._recorder("reset-recording")
        self._recorder("start-recording")

    def stop_recording(self) -> list[str]:
        self._recorder("stop-recording")
        calls = []
        for line in self._recorder("download-recording").decode("utf-8", "replace").splitlines():
            if line.strip():
                calls.append(describe_call(json.loads(line)))
        return calls

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def describe_call(entry: dict) -> str:
    """'secretsmanager GetSecretValue' or 's3 GET /bucket/key' from a moto recording entry."""
    headers = {k.lower(): v for k, v in entry.get("headers", {}).items()}
    service = "?"
    m = re.search(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/", headers.get("authorization", ""))
    if m:
        service = m.group(1)
    target = headers.get("x-amz-target")
    if target:
        return f"{service} {target.split('.')[-1]}"
    url = entry.get("url", "")
    path = re.sub(r"^https?://[^/]+", "", url).split("?")[0]
    return f"{service} {entry.get('method', '?')} {path}"


def create_resources(endpoint: str) -> dict:
    import aws_helpers  # boto3; imported late so a missing boto3 gives a clear message

    c = aws_helpers.clients(endpoint)
    res = aws_helpers.create_resources(c, shards=2)
    c["s3"].put_object(Bucket=res.bucket, Key=RULES_KEY,
                       Body=(REPO / "functions" / "alert" / "rules.default.toml").read_bytes())
    import boto3
    from botocore.config import Config

    sm = boto3.client("secretsmanager", endpoint_url=endpoint, config=Config(region_name=aws_helpers.REGION),
                      **aws_helpers.CREDENTIALS)
    secret = sm.create_secret(Name=f"sluice-fetch-{res.bucket}", SecretString="bench-api-key")
    return {"stream": res.stream, "bucket": res.bucket, "topic_arn": res.topic_arn,
            "secret_arn": secret["ARN"], "region": aws_helpers.REGION}


# ------------------------------------------------------------------------------- variants

@dataclass
class Variant:
    name: str
    function: str
    env: dict
    note: str = ""


def variants(binaries: dict[str, Binary], endpoint: str, res: dict) -> list[Variant]:
    """The environment Terraform sets (modules/aws/lambda.tf, default variables), plus the
    AWS_* variables Lambda sets (here pointing at moto)."""
    common = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": res["region"],
        "AWS_DEFAULT_REGION": res["region"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "SLUICE_BUCKET": res["bucket"],
        "SLUICE_LOG": "info",
    }
    mapping = (REPO / "functions" / "fetch" / "tests" / "fixtures" / "trades-mapping.toml").read_text()
    table = {
        "generate": [Variant("generate", "generate", {
            "SLUICE_SINK": "kinesis", "SLUICE_STREAM_NAME": res["stream"],
            "SLUICE_SCENARIOS": "trades,telemetry,clickstream", "SLUICE_RATE": "20", "SLUICE_SEED": "42",
        }, "SLUICE_SINK=kinesis")],
        "fetch": [Variant("fetch", "fetch", {
            "SLUICE_SINK": "kinesis", "SLUICE_STREAM_NAME": res["stream"],
            # Never called at init; a closed port so a stray call would fail fast.
            "SLUICE_FETCH_URL": "https://127.0.0.1:9/quotes",
            "SLUICE_FETCH_SECRET_ARN": res["secret_arn"],
            "SLUICE_FETCH_AUTH_HEADER": "Authorization",
            "SLUICE_FETCH_MAPPING": mapping,
        }, "API key from Secrets Manager")],
        "aggregate": [Variant("aggregate", "aggregate", {
            "SLUICE_LATENESS": "5s", "SLUICE_WINDOWS": "",
        })],
        "alert": [
            Variant("alert", "alert", {"SLUICE_TOPIC_ARN": res["topic_arn"], "SLUICE_RULES_KEY": ""},
                    "built-in rules (Terraform default)"),
            Variant("alert+rules", "alert", {"SLUICE_TOPIC_ARN": res["topic_arn"], "SLUICE_RULES_KEY": RULES_KEY},
                    "SLUICE_RULES_KEY: rules read from S3"),
        ],
    }
    out = []
    for fn in binaries:
        for v in table[fn]:
            v.env = {**common, **v.env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(MEMORY_MB[fn])}
            out.append(v)
    return out


# ------------------------------------------------------------------------------ measuring

@dataclass
class Sample:
    wall_ms: float
    cpu_ms: float
    maxrss_kb: int


@dataclass
class Outcome:
    name: str
    samples: list[Sample] = field(default_factory=list)
    init_calls: Optional[list[str]] = None
    connects: Optional[list[str]] = None
    note: str = ""


class InitFailed(Exception):
    pass


def reap(proc: subprocess.Popen) -> tuple[float, int]:
    """Kills (if needed) and reaps `proc`; (user+sys CPU ms, peak RSS KiB) from wait4."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.returncode is not None:  # already reaped by poll(): no rusage left
        return float("nan"), 0
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (ru.ru_utime + ru.ru_stime) * 1000.0, ru.ru_maxrss


def vm_hwm_kb(pid: int) -> int:
    """Peak RSS of a running process since its exec (VmHWM), KiB; 0 when unreadable."""
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def run_once(command: list[str], function_name: str, extra_env: dict, work: pathlib.Path,
             timeout: float, strace_out: Optional[pathlib.Path] = None,
             ports: Optional[list] = None) -> Sample:
    """Spawns `command` with a fresh Runtime API and returns the time to its first GET /next
    (and appends the Runtime API's port to `ports`, if given)."""
    api = InitTimingApi(function_name)
    if ports is not None:
        ports.append(int(api.address.rsplit(":", 1)[1]))
    env = lambda_environment(function_name, api.address, extra_env, home=str(work))
    out_path, err_path = work / f"{function_name}.stdout.log", work / f"{function_name}.stderr.log"
    if strace_out is not None:
        command = ["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(strace_out), *command]
    proc = None
    try:
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            t0 = time.perf_counter_ns()
            proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True)
            deadline = time.monotonic() + timeout
            while not api.first_next.wait(0.005):
                if api.init_errors or proc.poll() is not None or time.monotonic() > deadline:
                    why = ("posted an init error" if api.init_errors else
                           f"exited with code {proc.returncode}" if proc.returncode is not None else
                           f"did not poll /next within {timeout:.0f}s")
                    time.sleep(0.2)
                    reap(proc)
                    text = "\n".join(e.text() for e in api.init_errors)
                    text += "\n--- stderr ---\n" + err_path.read_text(errors="replace")[-4000:]
                    text += "\n--- stdout ---\n" + out_path.read_text(errors="replace")[-4000:]
                    raise InitFailed(f"{function_name} {why}:\n{text}")
            wall_ms = (api.first_next_ns - t0) / 1e6
            rss = vm_hwm_kb(proc.pid)  # wait4's ru_maxrss would include the pre-exec fork of Python
            cpu_ms, _ = reap(proc)
            return Sample(wall_ms, cpu_ms, rss)
    finally:
        if proc is not None and proc.returncode is None:
            reap(proc)
        api.close()


def run_true(work: pathlib.Path) -> Sample:
    true = shutil.which("true") or "/bin/true"
    t0 = time.perf_counter_ns()
    proc = subprocess.Popen([true], env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    _, status, ru = os.wait4(proc.pid, 0)
    wall_ms = (time.perf_counter_ns() - t0) / 1e6
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Sample(wall_ms, (ru.ru_utime + ru.ru_stime) * 1000.0, 0)  # exited: no VmHWM to read


def parse_connects(path: pathlib.Path, runtime_port: Optional[int], moto_port: int) -> list[str]:
    seen: dict[str, int] = {}
    if not path.exists():
        return []
    for line in path.read_text(errors="replace").splitlines():
        if "connect(" not in line:
            continue
        m = re.search(r'sin6?_port=htons\((\d+)\).*?(?:inet_addr|inet_pton\(AF_INET6?, )\("?([^")]+)"?\)', line)
        if m:
            port, addr = int(m.group(1)), m.group(2)
            label = ("Runtime API" if port == runtime_port else
                     "moto (AWS endpoint)" if port == moto_port else "OTHER")
            key = f"{addr}:{port} [{label}]"
        else:
            u = re.search(r'sun_path="([^"]+)"', line)
            key = f"unix:{u.group(1)}" if u else line.split("connect(", 1)[1][:80]
        seen[key] = seen.get(key, 0) + 1
    return [f"{k} x{n}" if n > 1 else k for k, n in seen.items()]


def probe(variant: Variant, binary: Binary, moto: Moto, work: pathlib.Path, timeout: float,
          use_strace: bool) -> tuple[list[str], Optional[list[str]]]:
    """One untimed start: the AWS calls made before the first poll (moto's recorder) and,
    with strace, every connect()."""
    moto.start_recording()
    strace_out = work / f"{variant.name}.strace" if use_strace else None
    ports: list[int] = []
    try:
        run_once([str(binary.path)], f"sluice-{variant.name}", variant.env, work, timeout, strace_out, ports)
    finally:
        calls = moto.stop_recording()
    connects = parse_connects(strace_out, ports[0], moto.port) if strace_out is not None else None
    return calls, connects


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]


def summary(samples: list[Sample]) -> dict:
    wall = [s.wall_ms for s in samples]
    cpu = [s.cpu_ms for s in samples if not math.isnan(s.cpu_ms)]
    return {
        "runs": len(samples),
        "min_ms": round(min(wall), 2),
        "median_ms": round(statistics.median(wall), 2),
        "p90_ms": round(percentile(wall, 90), 2),
        "max_ms": round(max(wall), 2),
        "cpu_median_ms": round(statistics.median(cpu), 2) if cpu else None,
        "peak_rss_mb": (round(max(s.maxrss_kb for s in samples) / 1024, 1)
                        if any(s.maxrss_kb for s in samples) else None),
        "samples_ms": [round(w, 3) for w in wall],
    }


def loadavg() -> Optional[list[float]]:
    try:
        return [float(x) for x in pathlib.Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def cpu_ticks() -> Optional[tuple[int, int]]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    try:
        fields = [int(x) for x in pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def busy_share(before, after) -> Optional[float]:
    if not before or not after or after[1] == before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]), 3)


def mb(n: Optional[int]) -> str:
    return "-" if n is None else f"{n / 1e6:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", "-n", type=int, default=20, help="timed starts per function (default 20)")
    ap.add_argument("--zip-dir", type=pathlib.Path, default=DEFAULT_ZIP_DIR,
                    help=f"directory with <fn>/bootstrap.zip (default {DEFAULT_ZIP_DIR})")
    ap.add_argument("--bin-dir", type=pathlib.Path,
                    help="use plain executables DIR/<fn> instead of the zips (e.g. ~/.cache/sluice-target/debug)")
    ap.add_argument("--functions", default=",".join(FUNCTIONS),
                    help="comma list of generate, fetch, aggregate, alert (default all four)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds one init may take (default 60)")
    ap.add_argument("--no-strace", action="store_true", help="skip the strace connect() probe")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    functions = [f.strip() for f in args.functions.split(",") if f.strip()]
    bad = [f for f in functions if f not in FUNCTIONS]
    if bad or not functions:
        ap.error(f"unknown function(s) {bad}; choose from {', '.join(FUNCTIONS)}")

    work = pathlib.Path(tempfile.mkdtemp(prefix="sluice-lambda-init-"))
    moto = None
    try:
        binaries = resolve_binaries(functions, args.zip_dir.expanduser(),
                                    args.bin_dir.expanduser() if args.bin_dir else None, work / "bin")
        for mod in ("boto3", "moto"):
            try:
                __import__(mod)
            except ImportError:
                raise Fatal(f"Python module {mod} is missing: run with the AWS test virtualenv "
                            f"(~/.cache/sluice-venvs/aws/bin/python, see tests/aws/requirements.txt)")
        use_strace = not args.no_strace and shutil.which("strace") is not None
        log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))

        log("starting moto server on 127.0.0.1 ...")
        moto = Moto(work)
        res = create_resources(moto.endpoint)
        vs = variants(binaries, moto.endpoint, res)
        null_runtime = build_null_runtime(work)

        outcomes = {v.name: Outcome(v.name, note=v.note) for v in vs}
        for v in vs:
            log(f"probe {v.name} ...")
            try:
                calls, connects = probe(v, binaries[v.function], moto, work, args.timeout, use_strace)
            except InitFailed as e:
                raise Fatal(str(e), 1)
            outcomes[v.name].init_calls = calls
            outcomes[v.name].connects = connects
        base_true = Outcome("true", note="spawn of /bin/true until exit")
        base_null = Outcome("null-runtime", note="C: connect + GET /next, timed like the functions") \
            if null_runtime else None
        if null_runtime:
            run_once([str(null_runtime)], "null-runtime", {}, work, args.timeout)  # warm-up
        run_true(work)

        load_before, ticks_before = loadavg(), cpu_ticks()
        log(f"timing {args.runs} starts each of {', '.join(v.name for v in vs)} (interleaved) ...")
        for i in range(args.runs):
            base_true.samples.append(run_true(work))
            if base_null:
                base_null.samples.append(run_once([str(null_runtime)], "null-runtime", {}, work, args.timeout))
            for v in vs:
                try:
                    s = run_once([str(binaries[v.function].path)], f"sluice-{v.name}", v.env, work, args.timeout)
                except InitFailed as e:
                    raise Fatal(str(e), 1)
                outcomes[v.name].samples.append(s)
        load_after, ticks_after = loadavg(), cpu_ticks()
        busy = busy_share(ticks_before, ticks_after)

        rows = []
        for o in [base_true] + ([base_null] if base_null else []):
            rows.append({"name": o.name, "kind": "baseline", "note": o.note, **summary(o.samples)})
        for v in vs:
            b = binaries[v.function]
            o = outcomes[v.name]
            rows.append({
                "name": v.name, "kind": "function", "function": v.function, "note": v.note,
                "memory_mb_terraform": MEMORY_MB[v.function],
                "binary": str(b.path if b.zip_path is None else b.zip_path),
                "zip_bytes": b.zip_bytes, "zip_mtime": b.zip_mtime, "binary_bytes": b.binary_bytes,
                "init_aws_calls": o.init_calls, "init_connects": o.connects,
                **summary(o.samples),
            })
        doc = {
            "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "definition": "process spawn -> first GET /2018-06-01/runtime/invocation/next at the Runtime API",
            "source": "bin-dir " + str(args.bin_dir) if args.bin_dir else "zips in " + str(args.zip_dir),
            "runs": args.runs,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(),
                        "loadavg_before": load_before, "loadavg_after": load_after,
                        "cpu_busy_share_during_timing": busy},
            "aws_endpoint": "moto server on 127.0.0.1 (plain HTTP)",
            "results": rows,
        }
        if args.json:
            print(json.dumps(doc, indent=2))
            return 0

        print(f"Lambda init: process spawn -> first GET /next, {args.runs} runs each "
              f"({doc['source']})")
        print(f"machine: {os.cpu_count()} CPUs, load average {load_before} -> {load_after}, "
              f"all CPUs {'?' if busy is None else f'{busy:.0%}'} busy while timing (this script included)")
        hdr = f"{'':<14}{'min ms':>8}{'median':>8}{'p90':>8}{'max':>8}{'cpu ms':>8}{'rss MB':>8}{'zip MB':>8}{'bin MB':>8}  memory"
        print(hdr)
        print("-" * len(hdr))
        for r in rows:
            rss = "-" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.1f}"
            print(f"{r['name']:<14}{r['min_ms']:>8.1f}{r['median_ms']:>8.1f}{r['p90_ms']:>8.1f}{r['max_ms']:>8.1f}"
                  f"{(r['cpu_median_ms'] or 0):>8.1f}{rss:>8}"
                  f"{mb(r.get('zip_bytes')):>8}{mb(r.get('binary_bytes')):>8}"
                  f"  {str(r.get('memory_mb_terraform', '')) + ' MB' if r['kind'] == 'function' else r['note']}")
        print("\nCalls made during init (before the first poll):")
        for r in rows:
            if r["kind"] != "function":
                continue
            calls = r["init_aws_calls"]
            print(f"  {r['name']:<12} AWS: {', '.join(calls) if calls else 'none'}")
            if r["init_connects"] is not None:
                print(f"  {'':<12} connect(): {', '.join(r['init_connects']) or 'none'}")
        print("\ncpu ms = user+sys CPU time until stopped after the first poll; on Lambda below 1,769 MB a function"
              "\ngets memory/1769 of a vCPU, so expect init wall time >= cpu ms / that fraction there."
              "\nSubtract null-runtime for the function's own init; zip/bin sizes in 10^6 bytes.")
        return 0
    except Fatal as e:
        print(f"lambda_init: {e}", file=sys.stderr)
        return e.code
    finally:
        if moto is not None:
            moto.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
