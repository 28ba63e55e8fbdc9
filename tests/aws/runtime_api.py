"""A small emulator of the AWS Lambda Runtime API, and a warm Lambda process driven through it.

The Lambda service talks to a custom runtime (a `bootstrap` binary built with `lambda_runtime`)
over HTTP only (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html):

    GET  /2018-06-01/runtime/invocation/next            long-poll; the body is the event JSON,
         headers Lambda-Runtime-Aws-Request-Id, -Deadline-Ms (epoch ms),
         -Invoked-Function-Arn, -Trace-Id
    POST /2018-06-01/runtime/invocation/{id}/response   the handler's result
    POST /2018-06-01/runtime/invocation/{id}/error      {"errorType": .., "errorMessage": ..}
    POST /2018-06-01/runtime/init/error                 the runtime could not start

`RuntimeApi` serves exactly that on 127.0.0.1:<free port>, hands out queued events one at a
time and collects the answers. `LambdaProcess` starts a bootstrap with the environment Lambda
gives it, keeps it running across invocations (a warm sandbox), and turns a crash or a hang
into an error that carries the process's output.

Only the standard library is used, so the self-test runs anywhere.
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import queue
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

API_PREFIX = "/2018-06-01/runtime"
ACCOUNT = "123456789012"
REGION = "us-east-1"


class InvokeError(AssertionError):
    """An invocation did not complete: the process died, hung, or broke the protocol."""


class InvokeTimeout(InvokeError):
    pass


class ProcessExited(InvokeError):
    pass


@dataclass
class Invocation:
    request_id: str
    body: bytes
    deadline_ms: int
    function_arn: str
    trace_id: str
    done: threading.Event = field(default_factory=threading.Event)
    delivered: bool = False
    cancelled: bool = False
    ok: Optional[bool] = None
    payload: Any = None
    raw: bytes = b""
    error_type_header: Optional[str] = None


@dataclass
class InitError:
    error_type_header: Optional[str]
    body: Any
    raw: bytes

    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")


class RuntimeApi:
    """The Runtime API for one function (one sandbox)."""

    def __init__(self, function_name: str, region: str = REGION, account: str = ACCOUNT):
        self.function_name = function_name
        self.function_arn = f"arn:aws:lambda:{region}:{account}:function:{function_name}"
        self._pending: "queue.Queue[Invocation]" = queue.Queue()
        self._lock = threading.Lock()
        self._by_id: dict[str, Invocation] = {}
        self._closing = threading.Event()
        self.init_errors: list[InitError] = []
        # Requests the runtime got wrong (unknown request id, second answer, unknown path).
        self.protocol_errors: list[str] = []
        self.next_polls = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
            name=f"runtime-api-{function_name}",
        )
        self._thread.start()

    # ------------------------------------------------------------------ public

    @property
    def address(self) -> str:
        """host:port, the value of AWS_LAMBDA_RUNTIME_API."""
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def submit(self, event: Any, timeout: float = 60.0) -> Invocation:
        body = event if isinstance(event, (bytes, bytearray)) else json.dumps(event).encode()
        inv = Invocation(
            request_id=str(uuid.uuid4()),
            body=bytes(body),
            deadline_ms=int((time.time() + timeout) * 1000),
            function_arn=self.function_arn,
            trace_id=f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0",
        )
        with self._lock:
            self._by_id[inv.request_id] = inv
        self._pending.put(inv)
        return inv

    def wait(self, inv: Invocation, timeout: float, alive: Optional[Callable[[], bool]] = None) -> tuple[bool, Any]:
        """Waits for the answer to `inv`; raises InvokeTimeout / ProcessExited."""
        end = time.monotonic() + timeout
        while not inv.done.wait(0.05):
            if alive is not None and not alive():
                # Give a response that raced with the exit a moment to land.
                if inv.done.wait(0.2):
                    break
                self._cancel(inv)
                raise ProcessExited(
                    f"the function process exited during invocation {inv.request_id} "
                    f"(event {'delivered' if inv.delivered else 'never fetched'})"
                )
            if time.monotonic() > end:
                self._cancel(inv)
                raise InvokeTimeout(
                    f"no answer to invocation {inv.request_id} within {timeout:.0f}s "
                    f"(event {'delivered' if inv.delivered else 'never fetched: is the runtime polling /next?'})"
                )
        return bool(inv.ok), inv.payload

    def invoke(self, event: Any, timeout: float = 60.0, alive: Optional[Callable[[], bool]] = None) -> tuple[bool, Any]:
        """Hands `event` to the runtime and returns (ok, payload): the decoded response body,
        or the error document ({"errorType", "errorMessage"}) when ok is False."""
        return self.wait(self.submit(event, timeout), timeout, alive)

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ---------------------------------------------------------------- internal

    def _cancel(self, inv: Invocation) -> None:
        with self._lock:
            inv.cancelled = True
            self._by_id.pop(inv.request_id, None)

    def _next(self) -> Optional[Invocation]:
        while not self._closing.is_set():
            try:
                inv = self._pending.get(timeout=0.1)
            except queue.Empty:
                continue
            with self._lock:
                if inv.cancelled:
                    continue
                inv.delivered = True
                return inv
        return None

    def _complete(self, request_id: str, ok: bool, raw: bytes, error_type: Optional[str]) -> tuple[int, dict]:
        with self._lock:
            inv = self._by_id.get(request_id)
            if inv is None or not inv.delivered or inv.done.is_set():
                why = "unknown" if inv is None else ("not yet delivered" if not inv.delivered else "already answered")
                self.protocol_errors.append(f"answer for {why} request id {request_id}")
                return 400, {"errorType": "InvalidRequestID", "errorMessage": f"request id {request_id} is {why}"}
            inv.raw = raw
            inv.ok = ok
            inv.error_type_header = error_type
            try:
                inv.payload = json.loads(raw) if raw else None
            except ValueError:
                inv.payload = raw.decode("utf-8", "replace")
            inv.done.set()
            del self._by_id[request_id]
        return 202, {"status": "OK"}

    def _handler_class(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as hyper expects

            def log_message(self, fmt, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _send(self, status: int, body: bytes, headers: Optional[dict] = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_GET(self):
                if self.path != f"{API_PREFIX}/invocation/next":
                    api.protocol_errors.append(f"GET {self.path}")
                    return self._send(404, b'{"errorType":"NotFound"}')
                api.next_polls += 1
                inv = api._next()
                if inv is None:  # shutting down: drop the connection
                    self.close_connection = True
                    return
                self._send(200, inv.body, {
                    "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": inv.function_arn,
                    "Lambda-Runtime-Trace-Id": inv.trace_id,
                })

            def do_POST(self):
                body = self._body()
                path = self.path
                error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
                if path == f"{API_PREFIX}/init/error":
                    try:
                        doc = json.loads(body) if body else None
                    except ValueError:
                        doc = body.decode("utf-8", "replace")
                    api.init_errors.append(InitError(error_type, doc, body))
                    return self._send(202, b'{"status":"OK"}')
                prefix = f"{API_PREFIX}/invocation/"
                if path.startswith(prefix):
                    rest = path[len(prefix):]
                    request_id, _, kind = rest.partition("/")
                    if kind in ("response", "error"):
                        status, doc = api._complete(request_id, kind == "response", body, error_type)
                        return self._send(status, json.dumps(doc).encode())
                api.protocol_errors.append(f"POST {path}")
                return self._send(404, b'{"errorType":"NotFound"}')

        return Handler


_counter = itertools.count()


def lambda_environment(function_name: str, runtime_api: str, extra: Optional[dict] = None,
                       home: Optional[str] = None) -> dict:
    """The variables Lambda sets for a custom runtime. lambda_runtime 1.x `Config::from_env`
    panics without AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_MEMORY_SIZE (an i32) and
    AWS_LAMBDA_FUNCTION_VERSION, and the API client needs AWS_LAMBDA_RUNTIME_API; the log
    group/stream default to "" but are set as Lambda does."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # A private HOME: no ~/.aws of the developer's leaks into the SDK's credential chain.
        "HOME": home or "/tmp",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"2026/01/01/[$LATEST]{uuid.uuid4().hex}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "RUST_BACKTRACE": "1",
    }
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


class LambdaProcess:
    """One warm sandbox: a Runtime API plus the bootstrap process polling it.

    `command` is the bootstrap (a list, e.g. [path] or [python, fake_bootstrap.py]); `env`
    is added to the Lambda variables (a value of None removes a variable)."""

    def __init__(self, command: list, function_name: str, env: Optional[dict] = None,
                 log_dir: Optional[pathlib.Path] = None):
        self.command = [str(c) for c in command]
        self.function_name = function_name
        self.api = RuntimeApi(function_name)
        log_dir = pathlib.Path(log_dir or "/tmp")
        log_dir.mkdir(parents=True, exist_ok=True)
        self.env = lambda_environment(function_name, self.api.address, env, home=str(log_dir))
        stem = f"{function_name}-{os.getpid()}-{next(_counter)}"
        self.stdout_path = log_dir / f"{stem}.stdout.log"
        self.stderr_path = log_dir / f"{stem}.stderr.log"
        self._stdout = open(self.stdout_path, "wb")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            self.command, env=self.env, stdin=subprocess.DEVNULL,
            stdout=self._stdout, stderr=self._stderr, start_new_session=True,
        )
        self.invocations = 0

    # -------------------------------------------------------------- lifecycle

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_exit(self, timeout: float) -> Optional[int]:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            if self.wait_exit(5) is None:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.api.close()
        for f in (self._stdout, self._stderr):
            try:
                f.close()
            except Exception:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------- invocation

    def invoke(self, event: Any, timeout: float = 60.0) -> tuple[bool, Any]:
        """(ok, payload) for one event; a dead or hung process raises with its output."""
        if not self.alive():
            raise ProcessExited(
                f"{self.function_name} is not running (exit code {self.proc.returncode})\n{self.output()}"
            )
        self.invocations += 1
        try:
            return self.api.invoke(event, timeout=timeout, alive=self.alive)
        except InvokeError as e:
            code = self.proc.poll()
            raise type(e)(f"{self.function_name}: {e}; exit code {code}\n{self.output()}") from None

    def invoke_ok(self, event: Any, timeout: float = 60.0) -> Any:
        """The payload of a successful invocation; an error response fails with the output."""
        ok, payload = self.invoke(event, timeout)
        if not ok:
            raise InvokeError(
                f"{self.function_name} returned an error: {json.dumps(payload)}\n{self.output()}"
            )
        return payload

    # ----------------------------------------------------------------- output

    def output(self, limit: int = 20_000) -> str:
        """The process's stdout and stderr so far (the last `limit` characters of each)."""
        parts = []
        for name, f, path in (("stdout", self._stdout, self.stdout_path), ("stderr", self._stderr, self.stderr_path)):
            try:
                f.flush()
            except Exception:
                pass
            text = path.read_text(errors="replace") if path.exists() else ""
            if len(text) > limit:
                text = f"... ({len(text) - limit} characters cut)\n" + text[-limit:]
            parts.append(f"--- {self.function_name} {name} ({path}) ---\n{text}")
        if self.api.init_errors:
            parts.append("--- init errors posted to the Runtime API ---\n"
                         + "\n".join(e.text() for e in self.api.init_errors))
        if self.api.protocol_errors:
            parts.append("--- Runtime API protocol errors ---\n" + "\n".join(self.api.protocol_errors))
        return "\n".join(parts)
