#!/usr/bin/env python3
"""A stand-in Lambda bootstrap for the Runtime API emulator's self-test (test_runtime_api.py).

It behaves like a lambda_runtime 1.x binary: the same required variables, one persistent
HTTP/1.1 connection, GET /next in a loop, POST /response or /error per event. The event
chooses what it does:

    {"echo": X}              respond {"echo": X, "request_id", "deadline_ms", "function_arn",
                              "trace_id", "pid", "invocation", "env": {AWS_LAMBDA_*}}
    {"fail": "message"}      POST /error {"errorType": "FakeError", "errorMessage": message}
    {"crash": code}          exit with `code` without answering
    {"sleep": seconds}       sleep, then respond {"slept": seconds}
    anything else            respond {"event": <the event>}

FAKE_REQUIRED_ENV="A,B": at start, a missing variable is an init error (POST /init/error,
message on stderr, exit 1), the way a sluice function reports a missing SLUICE_* variable.
"""

import http.client
import json
import os
import sys
import time

PREFIX = "/2018-06-01/runtime"


def main() -> int:
    api = os.environ["AWS_LAMBDA_RUNTIME_API"]  # KeyError → exit 1, as the Rust client panics
    for name in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION"):
        if name not in os.environ:
            print(f"Missing {name} env var", file=sys.stderr)
            return 101
    int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])

    host, _, port = api.partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=None)

    def post(path: str, doc, error_type=None) -> int:
        body = json.dumps(doc).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        if error_type:
            headers["Lambda-Runtime-Function-Error-Type"] = error_type
        conn.request("POST", PREFIX + path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status

    missing = [n for n in os.environ.get("FAKE_REQUIRED_ENV", "").split(",") if n and not os.environ.get(n)]
    if missing:
        message = f"environment variable {missing[0]} is required but not set"
        print(f"init failed: {message}", file=sys.stderr)
        post("/init/error", {"errorType": "ConfigError", "errorMessage": message}, "Runtime.InitError")
        return 1

    print(f"fake bootstrap {os.getpid()} polling {api}", file=sys.stderr, flush=True)
    count = 0
    while True:
        conn.request("GET", PREFIX + "/invocation/next")
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            print(f"/next answered {resp.status}: {body!r}", file=sys.stderr)
            return 2
        request_id = resp.getheader("Lambda-Runtime-Aws-Request-Id")
        deadline = int(resp.getheader("Lambda-Runtime-Deadline-Ms"))  # required, as in lambda_runtime
        count += 1
        event = json.loads(body)
        print(f"invocation {count} {request_id}: {len(body)} bytes", file=sys.stderr, flush=True)
        if isinstance(event, dict) and "crash" in event:
            sys.stderr.flush()
            os._exit(int(event["crash"]))
        if isinstance(event, dict) and "fail" in event:
            post(f"/invocation/{request_id}/error",
                 {"errorType": "FakeError", "errorMessage": str(event["fail"])}, "unhandled")
            continue
        if isinstance(event, dict) and "sleep" in event:
            time.sleep(float(event["sleep"]))
            result = {"slept": event["sleep"]}
        elif isinstance(event, dict) and "echo" in event:
            result = {
                "echo": event["echo"],
                "request_id": request_id,
                "deadline_ms": deadline,
                "function_arn": resp.getheader("Lambda-Runtime-Invoked-Function-Arn"),
                "trace_id": resp.getheader("Lambda-Runtime-Trace-Id"),
                "pid": os.getpid(),
                "invocation": count,
                "env": {k: v for k, v in os.environ.items() if k.startswith("AWS_LAMBDA_")},
            }
        else:
            result = {"event": event}
        status = post(f"/invocation/{request_id}/response", result)
        if status != 202:
            # lambda_runtime logs a non-2xx answer and carries on polling; so does this.
            print(f"/response answered {status}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
