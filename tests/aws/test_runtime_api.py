"""Self-test of the Lambda Runtime API emulator with a stand-in bootstrap (fake_bootstrap.py),
so the harness is known to work independently of the Rust functions. Standard library only."""

import http.client
import json
import pathlib
import sys
import time

import pytest

from runtime_api import InvokeError, InvokeTimeout, ProcessExited, RuntimeApi, lambda_environment

HERE = pathlib.Path(__file__).resolve().parent
FAKE = [sys.executable, str(HERE / "fake_bootstrap.py")]


def test_warm_process_serves_several_invocations_with_lambda_headers(start_lambda):
    fn = start_lambda(FAKE, "echo-fn")
    before = time.time() * 1000
    first = fn.invoke_ok({"echo": {"n": 1, "text": "héllo"}}, timeout=30)
    second = fn.invoke_ok({"echo": [1, 2, 3]}, timeout=30)

    assert first["echo"] == {"n": 1, "text": "héllo"}
    assert second["echo"] == [1, 2, 3]
    # One warm process answered both, in order.
    assert first["pid"] == second["pid"] == fn.proc.pid
    assert (first["invocation"], second["invocation"]) == (1, 2)
    assert first["request_id"] != second["request_id"]
    # Headers a lambda_runtime Context is built from.
    assert before + 25_000 < first["deadline_ms"] < before + 35_000
    assert first["function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:echo-fn"
    assert first["trace_id"].startswith("Root=1-")
    # The variables lambda_runtime's Config::from_env requires.
    env = first["env"]
    assert env["AWS_LAMBDA_RUNTIME_API"] == fn.api.address
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "echo-fn"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/echo-fn"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert fn.alive()
    assert fn.api.protocol_errors == []
    assert fn.api.init_errors == []


def test_large_event_round_trips(start_lambda):
    """A Kinesis batch of 2,000 records is ~1.5 MB of JSON; Lambda allows 6 MB."""
    fn = start_lambda(FAKE, "big-fn")
    blob = "x" * (5 * 1024 * 1024)
    out = fn.invoke_ok({"echo": blob}, timeout=30)
    assert out["echo"] == blob


def test_handler_error_is_reported_as_not_ok_and_the_process_stays_warm(start_lambda):
    fn = start_lambda(FAKE, "fail-fn")
    ok, payload = fn.invoke({"fail": "bucket is on fire"}, timeout=30)
    assert ok is False
    assert payload == {"errorType": "FakeError", "errorMessage": "bucket is on fire"}
    with pytest.raises(InvokeError, match="bucket is on fire"):
        fn.invoke_ok({"fail": "bucket is on fire"}, timeout=30)
    # Still warm: the next event succeeds on the same process.
    assert fn.invoke_ok({"echo": 3}, timeout=30)["pid"] == fn.proc.pid
    assert fn.api.protocol_errors == []


def test_init_error_is_recorded_and_names_the_variable(start_lambda):
    fn = start_lambda(FAKE, "init-fn", {"FAKE_REQUIRED_ENV": "SLUICE_BUCKET"})
    assert fn.wait_exit(15) == 1
    assert len(fn.api.init_errors) == 1
    err = fn.api.init_errors[0]
    assert err.error_type_header == "Runtime.InitError"
    assert err.body["errorMessage"] == "environment variable SLUICE_BUCKET is required but not set"
    assert "SLUICE_BUCKET" in fn.output()
    # Invoking a dead sandbox fails at once, with the output.
    with pytest.raises(ProcessExited, match="SLUICE_BUCKET"):
        fn.invoke({"echo": 1}, timeout=30)


def test_required_variable_present_starts_normally(start_lambda):
    fn = start_lambda(FAKE, "init-ok-fn", {"FAKE_REQUIRED_ENV": "SLUICE_BUCKET", "SLUICE_BUCKET": "b"})
    assert fn.invoke_ok({"echo": "up"}, timeout=30)["echo"] == "up"
    assert fn.api.init_errors == []


def test_lambda_runtime_required_variables_can_be_removed(start_lambda):
    fn = start_lambda(FAKE, "no-version-fn", {"AWS_LAMBDA_FUNCTION_VERSION": None})
    assert fn.wait_exit(15) == 101
    assert "AWS_LAMBDA_FUNCTION_VERSION" in fn.output()


def test_crash_during_invocation_fails_fast_with_output(start_lambda):
    fn = start_lambda(FAKE, "crash-fn")
    fn.invoke_ok({"echo": 0}, timeout=30)
    start = time.monotonic()
    with pytest.raises(ProcessExited) as info:
        fn.invoke({"crash": 7}, timeout=60)
    assert time.monotonic() - start < 10, "a dead process must not cost the whole timeout"
    assert "exit code 7" in str(info.value)
    assert "invocation 2" in str(info.value)  # the bootstrap's stderr is in the message


def test_hung_invocation_times_out_and_is_not_answered_later(start_lambda):
    fn = start_lambda(FAKE, "slow-fn")
    with pytest.raises(InvokeTimeout, match="within 1s"):
        fn.invoke({"sleep": 2}, timeout=1)
    # The late answer to the timed-out request is refused, not mistaken for the next one's.
    out = fn.invoke_ok({"echo": "after"}, timeout=30)
    assert out["echo"] == "after"
    assert any("unknown request id" in e for e in fn.api.protocol_errors)


def test_event_not_fetched_times_out_clearly():
    """No runtime polling: the timeout says the event was never fetched."""
    api = RuntimeApi("nobody")
    try:
        with pytest.raises(InvokeTimeout, match="never fetched"):
            api.invoke({"x": 1}, timeout=0.5)
    finally:
        api.close()


def test_protocol_violations_are_refused_and_recorded():
    api = RuntimeApi("proto")
    try:
        host, port = api.address.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("POST", "/2018-06-01/runtime/invocation/not-a-request/response", body=b"{}")
        resp = conn.getresponse()
        assert resp.status == 400
        assert json.loads(resp.read())["errorType"] == "InvalidRequestID"
        conn.request("GET", "/2018-06-01/runtime/nope")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 404
        assert len(api.protocol_errors) == 2
    finally:
        api.close()


def test_lambda_environment_overrides():
    env = lambda_environment("f", "127.0.0.1:1", {"SLUICE_BUCKET": "b", "AWS_LAMBDA_LOG_GROUP_NAME": None})
    assert env["SLUICE_BUCKET"] == "b"
    assert "AWS_LAMBDA_LOG_GROUP_NAME" not in env
    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:1"
