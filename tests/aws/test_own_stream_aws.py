"""README's worked example "Your own stream" (streams/examples/stocks/) deployed: a stream sluice
does not ship, read by every function from the bucket (SLUICE_STREAMS_PREFIX), with the real
Lambda binaries against moto through the Lambda Runtime API protocol:

    REST feed (local HTTP server, API key from Secrets Manager) --(fetch + mapping.toml)-->
        Kinesis --(KinesisEvent per shard)--> aggregate --(Parquet)--> S3 lake
        --(S3 event per windows/ object)--> alert (rules.toml) --(SNS)--> topic --> SQS queue

The feed is built here (the shape of feed.json: 3 symbols, a quote every 5 s from 09:30:00
New York time, zone-less local times, capitalised names) with a fixed seed, one symbol calm and
two volatile. Every window the lake holds is recomputed in Python from the feed, the New York
times converted to UTC with zoneinfo, and compared value by value.

Binaries: $SLUICE_LAMBDA_BIN_DIR/<fn>, default ${CARGO_TARGET_DIR:-<repo>/target}/debug/<fn>;
the test is skipped while they are not built (SLUICE_AWS_REQUIRE_BINARIES=1: failed instead).
"""

import datetime as dt
import io
import json
import pathlib
import random
import re
import statistics
import threading
import urllib.error
import urllib.request
import uuid
import zoneinfo
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aws_deps import require_modules

require_modules("boto3", "moto", "pyarrow")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import aws_helpers  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "streams" / "examples" / "stocks"
STREAM = "stocks"
STREAMS_PREFIX = "streams/"
DEFINITION_KEY = STREAMS_PREFIX + "stocks.toml"
RULES_KEY = "config/stocks-rules.toml"
RULE = "stock-volatility"
THRESHOLD = 1.0  # rules.toml: stddev > threshold
COOLDOWN = dt.timedelta(minutes=10)  # rules.toml
LATENESS = dt.timedelta(seconds=10)  # stocks.toml allowed_lateness (beats SLUICE_LATENESS)
ENV_LATENESS = dt.timedelta(seconds=5)  # SLUICE_LATENESS given to aggregate
AUTH_HEADER = "X-Api-Key"
INVOKE_TIMEOUT = 180  # seconds; debug builds on 2 cores
TS_MS_UTC = pa.timestamp("ms", tz="UTC")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = dt.timedelta(minutes=1)
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"  # stocks.toml [time] format

PART_KEY = re.compile(
    r"^(raw|windows|anomalies|late|quarantine)/scenario=([a-z_][a-z0-9_]*)/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/"
    r"part-(shardId-\d+)-(\d+)-(\d+)\.parquet$"
)

# ------------------------------------------------------------------------------- the feed

# symbol -> (opening price, standard deviation of a 5-second step)
SYMBOLS = {"AAPL": (190.36, 0.05), "MSFT": (412.56, 0.35), "NVDA": (479.81, 0.8)}
# Per symbol, 5 s apart: 09:30:00 .. 09:40:05 New York time. The last event at 09:40:05 puts the
# watermark at 09:39:55 under the definition's 10 s lateness (the 09:39 minute stays open) but
# at 09:40:00 under SLUICE_LATENESS=5s (it would close): the lake tells which lateness was used.
QUOTES = 122
START_LOCAL = dt.datetime(2026, 11, 24, 9, 30)  # EST: 14:30 UTC


def build_feed(seed=20261124):
    """The feed's JSON array: a quote per symbol every 5 s, as feed.json (prices random walks)."""
    rng = random.Random(seed)
    price = {s: p for s, (p, _) in SYMBOLS.items()}
    feed = []
    for i in range(QUOTES):
        local = START_LOCAL + dt.timedelta(seconds=5 * i)
        for symbol, (_, step) in SYMBOLS.items():
            if i:
                price[symbol] = max(1.0, price[symbol] + rng.gauss(0.0, step))
            close = round(price[symbol], 2)
            spread = round(close * 0.001, 2)
            feed.append({
                "Index": symbol,
                "Date": local.strftime(DATE_FORMAT),
                "Open": round(close + rng.uniform(-spread, spread), 2),
                "High": round(close + spread, 2),
                "Low": round(close - spread, 2),
                "Close": close,
                "Adj_Close": close,
                "Volume": rng.randint(100, 5000),
                "CloseUSD": close,
            })
    return feed


FEED = build_feed()


def utc_of(local_text):
    """A feed Date (zone-less New York local time) as an aware UTC datetime."""
    return dt.datetime.strptime(local_text, DATE_FORMAT).replace(tzinfo=NEW_YORK).astimezone(UTC)


def ms(t):
    return (t - EPOCH) // dt.timedelta(milliseconds=1)


def close_to(a, b, rel=1e-9):
    return a is not None and b is not None and abs(a - b) <= rel * max(abs(a), abs(b), 1.0)


def minute_of(t):
    return t.replace(second=0, microsecond=0)


# -------------------------------------------------------------------------- the REST API

class FeedServer:
    """The quote API on 127.0.0.1:<free port>: the feed for a request carrying the key in
    `header`, 401 otherwise. Every request is recorded (path, authorized, user agent)."""

    def __init__(self, body: bytes, header: str, key: str):
        self.requests = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):  # quiet
                pass

            def do_GET(self):
                authorized = self.headers.get(header) == key
                with server._lock:
                    server.requests.append({
                        "path": self.path,
                        "authorized": authorized,
                        "user_agent": self.headers.get("User-Agent", ""),
                        "header_sent": header in self.headers,
                    })
                status, payload = (200, body) if authorized else (401, b'{"error":"missing or wrong API key"}')
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True, name="feed-server")
        self._thread.start()

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1/quotes"

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def api_key():
    return f"key-{uuid.uuid4().hex}"


@pytest.fixture
def feed_server(api_key):
    server = FeedServer(json.dumps(FEED).encode(), AUTH_HEADER, api_key)
    try:
        yield server
    finally:
        server.close()


# ---------------------------------------------------------------- expected, from the feed

def expected_windows(feed, watermark_of):
    """Per-symbol one-minute and five-minute-every-minute windows recomputed from the feed.

    `watermark_of(symbol)`: the watermark of the shard carrying the symbol. Returns
    (tumbling, hopping): (symbol, window start) -> aggregates, closed windows only."""
    quotes = defaultdict(list)  # symbol -> [(utc time, close, volume)]
    for item in feed:
        quotes[item["Index"]].append((utc_of(item["Date"]), item["Close"], item["Volume"]))
    tumbling, hopping = {}, {}
    for symbol, qs in quotes.items():
        qs.sort()
        watermark = watermark_of(symbol)
        first, last = qs[0][0], qs[-1][0]
        start = minute_of(first)
        while start + MINUTE <= watermark:
            inside = [q for q in qs if start <= q[0] < start + MINUTE]
            if inside:
                closes = [c for _, c, _ in inside]
                volume = sum(v for _, _, v in inside)
                tumbling[(symbol, start)] = {
                    "count": len(inside),
                    "avg": statistics.fmean(closes),
                    "stddev": statistics.stdev(closes) if len(closes) >= 2 else None,
                    "min": min(closes),
                    "max": max(closes),
                    "first": inside[0][1],
                    "last": inside[-1][1],
                    "weighted_avg": sum(c * v for _, c, v in inside) / volume,
                    "volume_sum": float(volume),
                }
            start += MINUTE
        # Hopping 5m/1m: every minute-aligned window that holds a quote and is closed.
        end = minute_of(first) + MINUTE
        while end <= watermark and end - 5 * MINUTE <= last:
            inside = [c for t, c, _ in qs if end - 5 * MINUTE <= t < end]
            if inside:
                hopping[(symbol, end - 5 * MINUTE)] = {"count": len(inside), "avg": statistics.fmean(inside)}
            end += MINUTE
    return tumbling, hopping


# ------------------------------------------------------------------------------------ test

def read_parquet(s3, bucket, key):
    return pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


def test_own_stream_fetch_kinesis_aggregate_s3_alert_sns_sqs(
        lambda_binaries, aws, resources, start_lambda, feed_server, api_key):
    res = resources
    s3, kinesis, sqs, secrets = aws["s3"], aws["kinesis"], aws["sqs"], aws["secretsmanager"]
    fetch_bin = lambda_binaries["fetch"]

    # The feed this test relies on: every symbol quoted at every time, one calm symbol and at
    # least one whose one-minute close moves more than the rule's threshold.
    by_id = {(q["Index"], q["Date"]): q for q in FEED}
    assert len(by_id) == len(FEED) == QUOTES * len(SYMBOLS), "feed items are unique per (Index, Date)"
    assert utc_of(FEED[0]["Date"]) == dt.datetime(2026, 11, 24, 14, 30, tzinfo=UTC), "09:30 New York is 14:30 UTC"

    # ---------------------------------------------- 0. the deployment: definition, rules, key
    s3.put_object(Bucket=res.bucket, Key=DEFINITION_KEY, Body=(EXAMPLE / "stocks.toml").read_bytes())
    s3.put_object(Bucket=res.bucket, Key=RULES_KEY, Body=(EXAMPLE / "rules.toml").read_bytes())
    secret_arn = secrets.create_secret(Name=f"sluice-fetch-key-{uuid.uuid4().hex[:10]}", SecretString=api_key)["ARN"]
    env = {**aws_helpers.base_env(aws, res), "SLUICE_STREAMS_PREFIX": STREAMS_PREFIX}

    # The API really refuses a request without the key (so "one authorized request" means it).
    try:
        urllib.request.urlopen(feed_server.url, timeout=5)
        raise AssertionError("the feed server answered a request without the API key")
    except urllib.error.HTTPError as e:
        assert e.code == 401, f"expected 401 without the key, got {e.code}"
    feed_server.requests.clear()

    # --------------------------------------------------------------- 1. REST → fetch → Kinesis
    fetch = start_lambda(fetch_bin, "sluice-fetch", {
        **env,
        "SLUICE_SINK": "kinesis",
        "SLUICE_STREAM_NAME": res.stream,
        "SLUICE_FETCH_URL": feed_server.url,
        "SLUICE_FETCH_ALLOW_HTTP": "true",  # the local feed is plain HTTP on loopback
        "SLUICE_FETCH_SECRET_ARN": secret_arn,
        "SLUICE_FETCH_AUTH_HEADER": AUTH_HEADER,
        "SLUICE_FETCH_MAPPING": (EXAMPLE / "mapping.toml").read_text(),
    })
    out = fetch.invoke_ok(aws_helpers.scheduled_event(dt.datetime(2026, 11, 24, 14, 40, tzinfo=UTC)),
                          timeout=INVOKE_TIMEOUT)
    assert out.get("events") == len(FEED), f"fetch should map every feed item: {out}"
    assert out.get("rejected") == 0, f"fetch rejected feed items: {out}"
    assert out.get("quarantined_at") is None, f"fetch quarantined items: {out}"
    reqs = list(feed_server.requests)
    assert len(reqs) == 1, f"fetch should call the API exactly once: {reqs}"
    assert reqs[0]["authorized"], f"fetch did not send the secret's key in {AUTH_HEADER}: {reqs[0]}"
    assert reqs[0]["path"] == "/v1/quotes", reqs[0]
    assert reqs[0]["user_agent"].startswith("sluice-fetch/"), reqs[0]

    by_shard = aws_helpers.read_stream(kinesis, res.stream)
    in_stream = sum(len(r) for r in by_shard.values())
    assert in_stream == len(FEED), f"the stream holds {in_stream} records, the feed {len(FEED)} items"
    seen = Counter()
    shard_of = {}  # symbol -> shard
    shard_max = defaultdict(lambda: EPOCH)  # shard -> latest event time
    for shard_id, records in by_shard.items():
        for r in records:
            ev = json.loads(r["Data"])
            ident = (ev.get("Index"), ev.get("Date"))
            assert ident in by_id, f"record not from the feed: {ev}"
            assert ev == by_id[ident], f"record differs from its feed item:\n  {ev}\n  {by_id[ident]}"
            assert r["PartitionKey"] == ev["Index"], f"partition key is the Index: {r['PartitionKey']} vs {ev}"
            assert shard_of.setdefault(ev["Index"], shard_id) == shard_id, f"{ev['Index']} spread over shards"
            shard_max[shard_id] = max(shard_max[shard_id], utc_of(ev["Date"]))
            seen[ident] += 1
    assert set(seen) == set(by_id) and max(seen.values()) == 1, "every feed item exactly once in the stream"
    assert sorted(shard_of) == sorted(SYMBOLS), shard_of
    watermark_of = lambda symbol: shard_max[shard_of[symbol]] - LATENESS  # noqa: E731

    # ------------------------------------------------------- 2. Kinesis → aggregate → S3
    aggregate = start_lambda(lambda_binaries["aggregate"], "sluice-aggregate", {
        **env,
        "SLUICE_LATENESS": f"{ENV_LATENESS.seconds}s",
        "SLUICE_WINDOWS": "",
    })
    aws_helpers.deliver_all(aggregate, res.stream_arn, by_shard, timeout=INVOKE_TIMEOUT)

    # --------------------------------------------------------------------- 3. the lake
    objects = aws_helpers.list_objects(s3, res.bucket)
    keys = sorted(objects)
    by_prefix = lambda p: [k for k in keys if k.startswith(p)]  # noqa: E731
    assert by_prefix("quarantine/") == [], (
        f"stocks records were quarantined (were the definitions under {STREAMS_PREFIX} loaded?): "
        f"{by_prefix('quarantine/')}"
    )
    assert by_prefix("late/") == [], f"an in-order feed has no late records: {by_prefix('late/')}"
    raw_keys = by_prefix(f"raw/scenario={STREAM}/")
    window_keys = by_prefix(f"windows/scenario={STREAM}/")
    assert raw_keys, f"no raw/scenario={STREAM}/ objects; keys: {keys[:50]}"
    assert window_keys, f"no windows/scenario={STREAM}/ objects; keys: {keys[:50]}"
    for k in by_prefix("raw/") + by_prefix("windows/") + by_prefix("anomalies/"):
        m = PART_KEY.match(k)
        assert m, f"lake key does not follow the layout: {k}"
        assert m.group(2) == STREAM, f"only the {STREAM} stream was fed: {k}"
        assert m.group(5) in by_shard, f"unknown shard in {k}"
    for k in raw_keys:
        # Partitioned by event time in UTC: 09:30..09:39 New York is hour 14 UTC.
        assert PART_KEY.match(k).group(3, 4) == ("2026-11-24", "14"), f"raw partition is not the UTC hour: {k}"
    for shard_id in by_shard:
        state = f"state/aggregate/{res.stream}/{shard_id}/"  # its generations
        assert by_prefix(state), f"missing shard state {state}; state keys: {by_prefix('state/')}"

    # raw: every feed item once, columns lower-cased, Date as a UTC instant.
    raw = [read_parquet(s3, res.bucket, k) for k in raw_keys]
    columns = ("index", "date", "open", "high", "low", "close", "adj_close", "volume", "closeusd")
    for t in raw:
        for c in columns:
            assert c in t.schema.names, f"raw column {c} missing: {t.schema.names}"
        assert t.schema.field("date").type == TS_MS_UTC, t.schema
        assert t.schema.field("volume").type == pa.int64(), t.schema
        assert t.schema.field("close").type == pa.float64(), t.schema
    raw_rows = [r for t in raw for r in t.to_pylist()]
    assert len(raw_rows) == len(FEED), f"raw rows {len(raw_rows)} != feed items {len(FEED)}"
    by_instant = {(q["Index"], utc_of(q["Date"])): q for q in FEED}
    raw_seen = Counter()
    for r in raw_rows:
        ident = (r["index"], r["date"])
        assert ident in by_instant, f"raw row at a time no feed item has (time zone?): {ident}"
        q = by_instant[ident]
        for field in ("Open", "High", "Low", "Close", "Adj_Close", "Volume", "CloseUSD"):
            assert r[field.lower()] == q[field], f"raw {field.lower()} of {ident}: {r[field.lower()]} vs {q[field]}"
        assert r["shard_id"] == shard_of[r["index"]], f"raw lineage shard of {ident}: {r['shard_id']}"
        raw_seen[ident] += 1
    assert set(raw_seen) == set(by_instant) and max(raw_seen.values()) == 1, "every feed item exactly once in raw"

    # windows: each one recomputed from the feed.
    windows = pa.concat_tables([read_parquet(s3, res.bucket, k) for k in window_keys], promote_options="default")
    for col in ("window_start", "window_end"):
        assert windows.schema.field(col).type == TS_MS_UTC, windows.schema
    rows = windows.to_pylist()
    assert {r["scope"] for r in rows} == {"key"}, f"stocks declares no rollup: {Counter(r['scope'] for r in rows)}"
    names = Counter((r["window_name"], r["metric"]) for r in rows)
    assert set(names) == {("tumbling_1m", "Close"), ("tumbling_1m", "Volume"),
                          ("hopping_5m_1m", "Close"), ("hopping_5m_1m", "Volume")}, names
    want_1m, want_5m = expected_windows(FEED, watermark_of)
    assert want_1m and want_5m, "the feed closes windows"
    # The feed tells the two latenesses apart: under SLUICE_LATENESS one more minute would close.
    env_1m, _ = expected_windows(FEED, lambda symbol: shard_max[shard_of[symbol]] - ENV_LATENESS)
    assert set(env_1m) > set(want_1m), "the test feed should close more windows under SLUICE_LATENESS"

    got_1m = {}
    for r in rows:
        if r["window_name"] != "tumbling_1m" or r["metric"] != "Close":
            continue
        ident = (r["key"], r["window_start"])
        assert ident not in got_1m, f"window emitted twice: {ident}"
        got_1m[ident] = r
        assert r["window_end"] - r["window_start"] == MINUTE, r
        assert ident in want_1m, f"emitted window {ident} is not a closed minute with quotes: {r}"
        want = want_1m[ident]
        assert r["count"] == want["count"], f"{ident} count {r['count']} != {want['count']}"
        for agg in ("avg", "stddev", "min", "max", "first", "last", "weighted_avg"):
            assert close_to(r[agg], want[agg]), f"{ident} {agg}: lake {r[agg]!r}, feed {want[agg]!r}"
    missing = sorted(set(want_1m) - set(got_1m))
    assert not missing, f"closed one-minute windows missing from the lake: {missing[:10]}"

    got_volume = {(r["key"], r["window_start"]): r for r in rows
                  if r["window_name"] == "tumbling_1m" and r["metric"] == "Volume"}
    assert set(got_volume) == set(want_1m), sorted(set(got_volume) ^ set(want_1m))[:10]
    for ident, r in got_volume.items():
        assert close_to(r["sum"], want_1m[ident]["volume_sum"]), f"{ident} Volume sum {r['sum']} != {want_1m[ident]['volume_sum']}"

    got_5m = {}
    for r in rows:
        if r["window_name"] != "hopping_5m_1m" or r["metric"] != "Close":
            continue
        ident = (r["key"], r["window_start"])
        assert ident not in got_5m, f"hopping window emitted twice: {ident}"
        got_5m[ident] = r
        assert r["window_end"] - r["window_start"] == 5 * MINUTE, r
        assert ident in want_5m, f"emitted hopping window {ident} is not closed or holds no quote: {r}"
        want = want_5m[ident]
        assert r["count"] == want["count"], f"hopping {ident} count {r['count']} != {want['count']}"
        assert close_to(r["avg"], want["avg"]), f"hopping {ident} avg: lake {r['avg']!r}, feed {want['avg']!r}"
    missing = sorted(set(want_5m) - set(got_5m))
    assert not missing, f"closed hopping windows missing from the lake: {missing[:10]}"

    # ------------------------------------------------------ 4. S3 events → alert → SNS → SQS
    volatile = {ident: w["stddev"] for ident, w in want_1m.items() if w["stddev"] is not None and w["stddev"] > THRESHOLD}
    volatile_symbols = {symbol for symbol, _ in volatile}
    assert volatile_symbols and volatile_symbols != set(SYMBOLS), (
        f"the test feed needs volatile and calm symbols: volatile windows {sorted(volatile)}"
    )
    ends = [start + MINUTE for _, start in want_1m]
    # All closed windows fall within one cooldown: exactly one alert per volatile symbol.
    assert max(ends) - min(ends) < COOLDOWN, (min(ends), max(ends))

    alert = start_lambda(lambda_binaries["alert"], "sluice-alert", {
        **env,
        "SLUICE_TOPIC_ARN": res.topic_arn,
        "SLUICE_RULES_KEY": RULES_KEY,
    })
    sent = 0
    for k in window_keys:
        out = alert.invoke_ok(aws_helpers.s3_event(res.bucket, k, objects[k]["size"], objects[k]["etag"]),
                              timeout=INVOKE_TIMEOUT)
        assert out.get("objects") == 1, f"alert did not evaluate {k}: {out}"
        assert out.get("rule_errors", []) == [], f"rule errors on {k}: {out}"
        sent += out["sent"]
    assert sent >= 1, f"{RULE} fired on none of the volatile windows {sorted(volatile)}"
    assert sent == len(volatile_symbols), (
        f"alert sent {sent}, expected one per volatile symbol (cooldown {COOLDOWN}): {sorted(volatile_symbols)}"
    )

    messages = aws_helpers.receive_all(sqs, res.queue_url, expected=sent, timeout=20)
    assert len(messages) == sent, f"SQS got {len(messages)} messages, alert reported {sent} sent"
    alerted = set()
    for m in messages:
        attrs = {k: v.get("StringValue") for k, v in m.get("MessageAttributes", {}).items()}
        assert attrs.get("rule") == RULE, f"attribute rule: {attrs}"
        assert attrs.get("severity") == "warning", f"attribute severity: {attrs}"
        assert attrs.get("scenario") == STREAM, f"attribute scenario: {attrs}"
        symbol = attrs.get("key")
        assert symbol in volatile_symbols, (
            f"alert for {symbol}, whose closed one-minute Close stddev never exceeded {THRESHOLD}: {m['Body']}"
        )
        window = re.search(r"^Window:\s+tumbling_1m \[(\S+) \.\. (\S+)\)", m["Body"], re.M)
        value = re.search(r"^Value:\s+(\S+)", m["Body"], re.M)
        assert window and value, f"alert body without window or value: {m['Body']}"
        start = dt.datetime.fromisoformat(window.group(1).replace("Z", "+00:00"))
        assert (symbol, start) in volatile, f"alert on {symbol} window {start}, not a volatile one: {m['Body']}"
        assert abs(float(value.group(1)) - volatile[(symbol, start)]) <= 1e-6, (
            f"alert value {value.group(1)} != stddev {volatile[(symbol, start)]}: {m['Body']}"
        )
        assert symbol not in alerted, f"second alert for {symbol} within the cooldown"
        alerted.add(symbol)
    assert alerted == volatile_symbols, f"alerted {sorted(alerted)}, volatile {sorted(volatile_symbols)}"

    for fn in (fetch, aggregate, alert):
        assert fn.alive(), f"{fn.function_name} exited: it must stay warm between invocations"
        assert fn.api.init_errors == [] and fn.api.protocol_errors == [], fn.output()
