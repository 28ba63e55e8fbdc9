"""The aggregate Lambda as a competent data engineer would write it in Python, without sluice.

`handler(event, context)` takes a Kinesis event exactly as Lambda hands it to a Python function
(a dict: `Records[].kinesis.data` base64 JSON, `partitionKey`, `sequenceNumber`,
`approximateArrivalTimestamp`) and produces the same lake objects sluice's aggregate function
produces for one batch from an empty state:

- raw events per scenario, quarantined records with their bytes and a reason code, late events;
- the default event-time windows (tumbling 10 s and 1 min everywhere, hopping 5 min every minute
  for trades, 5-minute sessions for clickstream, clickstream also rolled up into the stream-wide series `all`, one part per shard),
  with count/sum/min/max/avg/stddev/first/last and VWAP for trade prices;
- a simple exponentially weighted z-score over the 10-second series (not sluice's detectors);

as zstd Parquet bytes in memory under sluice's Hive-partitioned keys.

The rules are sluice's (streams/*.toml, functions/core/src/stream/decode.rs, functions/core/src/window/*.rs,
functions/aggregate/src/lib.rs). What this handler does *not* do: keep state between
invocations. Windows the watermark has not closed are dropped rather than carried to the next
batch, redelivered records are not recognised by a committed sequence number, and the detectors
have no history. A production version would need all three; sluice's `bench aggregate`, which
this is compared with, also starts every run from an empty state.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import io
import json
import os
import re
import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# --- configuration: sluice's defaults (Settings::default / AggregateConfig::default) ----------

ALLOWED_LATENESS_MS = 5_000
MIN_EVENT_TIME_MS = 946_684_800_000  # 2000-01-01
MAX_EVENT_TIME_MS = 4_102_444_800_000  # 2100-01-01 (exclusive)
MAX_FUTURE_SKEW_MS = 3_600_000
MAX_CLOCK_SKEW_MS = 30_000  # [time] max_clock_skew default (streams/*.toml set none)
DEDUP_HORIZON_MS = 600_000  # [time] dedup_horizon default: ids kept this far behind the watermark
MAX_ID_LEN = 256
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000

SCENARIOS = ("trades", "telemetry", "clickstream")
KEY_FIELD = {"trades": "symbol", "telemetry": "host", "clickstream": "user_id"}
METRICS = {
    "trades": ("price", "quantity"),
    "telemetry": ("cpu_pct", "mem_pct", "error_count", "latency_ms"),
    "clickstream": ("actions", "purchase_amount"),
}
# The clickstream definition's rollup (streams/clickstream.toml).
ROLLUP_NAME = "all"
ROLLUP_SCENARIOS = ("clickstream",)


@dataclass(frozen=True)
class WindowDef:
    name: str
    kind: str  # tumbling | hopping | session
    size_ms: int  # window size, or the session gap
    step_ms: int  # hop (tumbling: = size), or the session's maximum duration
    scenarios: tuple


WINDOWS = (
    WindowDef("tumbling_10s", "tumbling", 10_000, 10_000, SCENARIOS),
    WindowDef("tumbling_1m", "tumbling", 60_000, 60_000, SCENARIOS),
    WindowDef("hopping_5m_1m", "hopping", 300_000, 60_000, ("trades",)),
    WindowDef("session_5m", "session", 300_000, 4 * MS_PER_HOUR, ("clickstream",)),
)

# Detection series over the 10-second windows: (scenario, metric, reduce, transform, rollup only).
DETECTION_WINDOW = "tumbling_10s"
DETECTION_SERIES = (
    ("trades", "price", "last", "return", False),
    ("trades", "quantity", "sum", "level", False),
    ("telemetry", "cpu_pct", "avg", "level", False),
    ("telemetry", "error_count", "sum", "level", False),
    ("telemetry", "latency_ms", "avg", "level", False),
    ("clickstream", "purchase_amount", "sum", "level", True),
)
ZSCORE_SPAN, ZSCORE_THRESHOLD, ZSCORE_WARMUP = 30, 5.0, 12

# --- lake schemas (sluice_core::schema) --------------------------------------------------------

_TS = pa.timestamp("ms", tz="UTC")


def _schema(*cols):
    return pa.schema([pa.field(n, t, nullable=null) for n, t, null in cols])


def _c(name, ty):
    return (name, ty, False)


def _o(name, ty):
    return (name, ty, True)


_LINEAGE = (_c("shard_id", pa.string()), _c("sequence_number", pa.string()), _c("arrival_time", _TS))
# The position of a user record within a KPL aggregate; this handler reads plain records only.
_SUB = _o("sub_sequence_number", pa.int64())
RAW_SCHEMAS = {
    "trades": _schema(
        _c("event_id", pa.string()), _c("event_time", _TS), _c("symbol", pa.string()),
        _c("side", pa.string()), _c("price", pa.float64()), _c("quantity", pa.int64()),
        _c("trade_type", pa.string()), *_LINEAGE, _SUB),
    "telemetry": _schema(
        _c("event_id", pa.string()), _c("event_time", _TS), _c("host", pa.string()),
        _c("cpu_pct", pa.float64()), _c("mem_pct", pa.float64()), _c("error_count", pa.int64()),
        _c("latency_ms", pa.float64()), *_LINEAGE, _SUB),
    "clickstream": _schema(
        _c("event_id", pa.string()), _c("event_time", _TS), _c("user_id", pa.string()),
        _c("product_id", pa.string()), _c("action", pa.string()), _o("amount", pa.float64()),
        *_LINEAGE, _SUB),
}
RAW_FIELDS = {s: RAW_SCHEMAS[s].names[3:-4] for s in SCENARIOS}
WINDOWS_SCHEMA = _schema(
    _c("key", pa.string()), _c("window_name", pa.string()), _c("window_kind", pa.string()),
    _c("window_start", _TS), _c("window_end", _TS), _c("metric", pa.string()),
    _o("count", pa.int64()), _o("sum", pa.float64()), _o("min", pa.float64()),
    _o("max", pa.float64()), _o("avg", pa.float64()), _o("stddev", pa.float64()),
    _o("first", pa.float64()), _o("last", pa.float64()), _o("weighted_avg", pa.float64()),
    _c("scope", pa.string()), _c("shard_id", pa.string()),
    # What merges a window's rows from several shards (windows_merged); sluice also writes the
    # first/last values' times and ordinals, not reproduced here.
    _o("m2", pa.float64()), _o("weighted_sum", pa.float64()), _o("weight_total", pa.float64()))
ANOMALIES_SCHEMA = _schema(
    _c("key", pa.string()), _c("metric", pa.string()), _c("window_name", pa.string()),
    _c("window_start", _TS), _c("window_end", _TS), _c("detector", pa.string()),
    _c("direction", pa.string()), _c("score", pa.float64()), _c("value", pa.float64()),
    _c("baseline", pa.float64()), _c("spread", pa.float64()),
    _c("scope", pa.string()), _c("shard_id", pa.string()))
LATE_SCHEMA = _schema(
    _o("event_id", pa.string()), _c("key", pa.string()), _c("event_time", _TS),
    _c("watermark", _TS), *_LINEAGE, _SUB)
QUARANTINE_SCHEMA = _schema(
    *_LINEAGE, _c("partition_key", pa.string()), _c("reason_code", pa.string()),
    _c("reason", pa.string()), _c("raw", pa.binary()), _SUB)

# --- decoding and validation (streams/*.toml, functions/core/src/stream/decode.rs) ---------------------------------


class Rejected(Exception):
    """A record that cannot become an event; `code` is sluice's reason_code."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _invalid(name, reason):
    return Rejected("invalid_value", f"field `{name}`: {reason}")


def _missing(name):
    return Rejected("missing_field", f"missing field `{name}`")


_STR_FIELDS = ("scenario", "event_id", "event_time", "key", "symbol", "side", "trade_type",
               "host", "user_id", "product_id", "action")
_NUM_FIELDS = ("price", "quantity", "cpu_pct", "mem_pct", "error_count", "latency_ms", "amount")
_FIELD_KIND = {**{f: "s" for f in _STR_FIELDS}, **{f: "n" for f in _NUM_FIELDS}}
# Rust's str::trim() strips Unicode White_Space, which is narrower than str.strip()'s default.
_WS = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
       "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # char::is_control = general category Cc
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))?")
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
_FLOAT_MAX = sys.float_info.max
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


class _Duplicates(dict):
    """An object that repeated some of its keys (the last value wins, as in `json`)."""

    repeated: set


def _object(pairs):
    d = dict(pairs)
    if len(d) != len(pairs):
        d = _Duplicates(d)
        seen = set()
        d.repeated = {k for k, _ in pairs if k in seen or seen.add(k)}
    return d


# Built once: `json.loads(text, **options)` would build a decoder per record.
_JSON = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_object)


def _parse(data: bytes):
    """JSON as serde_json reads it: strict UTF-8, no NaN/Infinity."""
    return _JSON.decode(data.decode("utf-8"))


def _lone_surrogate(obj: dict) -> bool:
    """serde_json refuses a lone surrogate escape (\\ud800) in a field it reads (not in ones it
    skips); Python's json lets it through."""
    for name in _STR_FIELDS:
        v = obj.get(name)
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 (Howard Hinnant's algorithm, as time.rs)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    return era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468


def parse_timestamp_ms(text: str) -> int:
    """RFC 3339 with a required offset; fractions truncated to milliseconds (time.rs)."""
    m = _TIMESTAMP.fullmatch(text.strip(_WS))
    if m is None:
        raise ValueError(f"timestamp {text!r} is not RFC 3339 (expected e.g. 2026-11-24T05:03:07.123Z)")
    y, mo, d, h, mi, s = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    if not 1 <= mo <= 12:
        raise ValueError(f"timestamp {text!r} is out of range: month")
    leap = mo == 2 and (y % 4 == 0 and y % 100 != 0 or y % 400 == 0)
    if d == 0 or d > _DAYS_IN_MONTH[mo - 1] + leap:
        raise ValueError(f"timestamp {text!r} is out of range: day of month")
    if h > 23 or mi > 59 or s > 59:
        raise ValueError(f"timestamp {text!r} is out of range: time of day")
    frac = m.group(7)
    millis = int((frac[:3]).ljust(3, "0")) if frac else 0
    if m.group(8):
        offset = 0
    elif m.group(9):
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            raise ValueError(f"timestamp {text!r} is out of range: UTC offset")
        offset = (oh * 60 + om) * 60_000 * (1 if m.group(9) == "+" else -1)
    else:
        raise ValueError(f"timestamp {text!r} has no UTC offset (add Z or +00:00)")
    days = days_from_civil(y, mo, d)
    return days * MS_PER_DAY + ((h * 60 + mi) * 60 + s) * 1000 + millis - offset


def _identifier(value, name):
    if value is None:
        raise _missing(name)
    if not value.strip(_WS):
        raise _invalid(name, "is empty")
    if len(value) > MAX_ID_LEN // 4:
        n = len(value.encode("utf-8", "surrogatepass"))
        if n > MAX_ID_LEN:
            raise _invalid(name, f"is {n} bytes long (at most {MAX_ID_LEN})")
    if _CONTROL.search(value):
        raise _invalid(name, "contains control characters")
    return value


def _number(value, name, lo, hi):
    if value is None:
        raise _missing(name)
    if not lo <= value <= hi:
        raise _invalid(name, f"{value} is outside the plausible range [{lo}, {hi}]")
    return float(value)


def _whole(value, name, lo, hi):
    v = _number(value, name, lo, hi)
    if not v.is_integer():
        raise _invalid(name, f"{v} is not a whole number")
    return int(v)


def _choice(value, name, options):
    if value is None:
        raise _missing(name)
    if value not in options:
        raise _invalid(name, f"{value!r} is not one of {', '.join(options)}")
    return value


def decode(data: bytes, arrival_ms: int | None):
    """One record's bytes → (scenario, event_id, event_time_ms, key, fields...), or Rejected."""
    try:
        obj = _parse(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise Rejected("malformed_json", f"record is not valid UTF-8 JSON: {e}") from None
    if not isinstance(obj, dict):
        raise Rejected("wrong_type", f"record is not a JSON object: got {type(obj).__name__}")
    if b"\\u" in data and _lone_surrogate(obj):
        raise Rejected("malformed_json", "record is not valid UTF-8 JSON: lone surrogate in a \\u escape")
    if isinstance(obj, _Duplicates) and obj.repeated & _FIELD_KIND.keys():
        name = min(obj.repeated & _FIELD_KIND.keys())
        raise Rejected("wrong_type", f"member `{name}` appears twice")
    # serde_json converts every member some definition reads while parsing: a number beyond
    # f64 is a syntax error there, whichever stream the record belongs to.
    for name, value in obj.items():
        if (name in _FIELD_KIND and isinstance(value, (int, float))
                and not isinstance(value, bool) and not -_FLOAT_MAX <= value <= _FLOAT_MAX):
            raise Rejected("malformed_json", f"record is not valid UTF-8 JSON: `{name}` is out of range")
    get = obj.get
    scenario = get("scenario")
    if scenario is None:
        raise _missing("scenario")
    if not isinstance(scenario, str):
        raise Rejected("wrong_type", "field `scenario`: expected a string")
    if scenario not in KEY_FIELD:
        raise Rejected("unknown_scenario",
                       f"unknown stream {scenario!r} (expected trades, telemetry or clickstream)")
    # Fields in the order the stream definition declares them (streams/*.toml), each checked
    # for presence, type and value before the next.
    event_id = _identifier(_text(get("event_id"), "event_id"), "event_id")
    time_text = _text(get("event_time"), "event_time")
    if time_text is None:
        raise _missing("event_time")
    try:
        t = parse_timestamp_ms(time_text)
    except ValueError as e:
        raise _invalid("event_time", str(e)) from None
    if not MIN_EVENT_TIME_MS <= t < MAX_EVENT_TIME_MS:
        raise Rejected("out_of_range", f"field `event_time`: {time_text} is outside the accepted range "
                       "2000-01-01..2100-01-01 (the tables' partition projection)")
    if arrival_ms is not None and t > arrival_ms + MAX_FUTURE_SKEW_MS:
        raise _invalid("event_time",
                       f"{time_text} is {(t - arrival_ms) // 60_000} min after the record arrived")
    key_field = KEY_FIELD[scenario]
    # The key field, or (an alias) `key` when it is absent; both present must agree.
    own, alias = get(key_field), get("key")
    key = _text(own if own is not None else alias, key_field)
    if key is None:
        raise _missing(key_field)
    if own is not None and alias is not None and alias != own:
        raise _invalid(key_field, f"differs from `key` ({alias!r}), which names the same value")
    key = _identifier(key, key_field)
    if scenario == "trades":
        side = _choice(_text(get("side"), "side"), "side", ("BUY", "SELL"))
        price = _num(get("price"), "price")
        if price is None:
            raise _missing("price")
        if not price > 0.0:
            raise _invalid("price", f"{price} must be greater than 0")
        price = _number(price, "price", 0.0, 1e7)
        quantity = _whole(_num(get("quantity"), "quantity"), "quantity", 1.0, 1e9)
        trade_type = _choice(_text(get("trade_type"), "trade_type"), "trade_type", ("MARKET", "LIMIT", "STOP"))
        return scenario, event_id, t, key, side, price, quantity, trade_type
    if scenario == "telemetry":
        return (scenario, event_id, t, key,
                _number(_num(get("cpu_pct"), "cpu_pct"), "cpu_pct", 0.0, 100.0),
                _number(_num(get("mem_pct"), "mem_pct"), "mem_pct", 0.0, 100.0),
                _whole(_num(get("error_count"), "error_count"), "error_count", 0.0, 1e9),
                _number(_num(get("latency_ms"), "latency_ms"), "latency_ms", 0.0, 3.6e6))
    product_id = _text(get("product_id"), "product_id")
    if product_id is None:
        raise _missing("product_id")
    action = _choice(_text(get("action"), "action"), "action", ("view", "click", "cart", "purchase"))
    amount = _num(get("amount"), "amount")
    if amount is not None:
        amount = _number(amount, "amount", 0.0, 1e7)
    elif action in ("cart", "purchase"):
        raise _missing("amount")
    return scenario, event_id, t, key, product_id, action, amount


def _text(value, name):
    """A string member, or None when absent or null."""
    if value is not None and not isinstance(value, str):
        raise Rejected("wrong_type", f"field `{name}`: expected a string")
    return value


def _num(value, name):
    """A number member (not a boolean), or None when absent or null."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise Rejected("wrong_type", f"field `{name}`: expected a number")
    return value


def quarantine_scenario(data: bytes) -> str:
    """Scenario partition of an undecodable record: read it if the JSON allows."""
    try:
        obj = _parse(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "unknown"
    if isinstance(obj, _Duplicates) and "scenario" in obj.repeated:
        return "unknown"
    s = obj.get("scenario") if isinstance(obj, dict) else None
    return s if s in KEY_FIELD else "unknown"


def arrival_ms(value) -> int:
    """`approximateArrivalTimestamp`: seconds since the epoch, a number or a numeric string."""
    if isinstance(value, str):
        whole, _, frac = value.strip().partition(".")
        if whole.lstrip("-").isdigit() and (not frac or frac.isdigit()):
            ms = int(whole) * 1000 + int((frac[:3] or "0").ljust(3, "0"))
            return ms
        value = float(value)
    return int(round(float(value) * 1000))


# --- lake keys (functions/core/src/lake.rs) ----------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def partition_path(ms: int) -> str:
    day = _dt.date.fromordinal(ms // MS_PER_DAY + _EPOCH_ORDINAL)
    return f"dt={day.isoformat()}/hour={ms % MS_PER_DAY // MS_PER_HOUR:02d}"


def object_key(prefix: str, scenario: str | None, partition_ms: int, batch: tuple) -> str:
    shard, first, last = (_UNSAFE.sub("_", p) for p in batch)
    scenario_part = f"scenario={scenario}/" if scenario is not None else ""
    return (f"{prefix}/{scenario_part}{partition_path(partition_ms)}/"
            f"part-{shard}-{first}-{last}.parquet")


def to_parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", compression_level=1)
    return buf.getvalue()


def _hour(ms):
    return ms - ms % MS_PER_HOUR


# --- windows (functions/core/src/window/*.rs) --------------------------------------------------


def _long_samples(scenario: str, ev: pd.DataFrame) -> pd.DataFrame:
    """One row per (event, metric) with a value; `weight` is the quantity for trade prices."""
    parts = []
    for m, metric in enumerate(METRICS[scenario]):
        values = ev[metric].to_numpy(dtype=float)
        has = ~np.isnan(values)
        weight = (ev["quantity"].to_numpy(dtype=float) if (scenario, metric) == ("trades", "price")
                  else np.ones(len(ev)))
        parts.append(pd.DataFrame({
            "i": np.flatnonzero(has), "k": ev["k"].to_numpy()[has], "t": ev["t"].to_numpy()[has],
            "m": m, "value": values[has], "weight": weight[has]}))
    long = pd.concat(parts, ignore_index=True)
    long["vw"] = long["value"] * long["weight"]
    return long


_AGG = dict(count=("value", "size"), sum=("value", "sum"), min=("value", "min"),
            max=("value", "max"), avg=("value", "mean"), stddev=("value", "std"),
            first=("value", "first"), last=("value", "last"), vw=("vw", "sum"),
            w=("weight", "sum"))


def _sessions(ev: pd.DataFrame, gap: int, max_ms: int):
    """Sessions per key: events closer than `gap` (in event-time order) share a session, which
    is cut where it would span more than `max_ms`. Returns (session id per event, and per
    session: key code, start = first event, end = last event + gap)."""
    k, t = ev["k"].to_numpy(), ev["t"].to_numpy()
    order = np.lexsort((ev["ord"].to_numpy(), t, k))
    k, t = k[order], t[order]
    new = np.ones(len(t), dtype=bool)
    new[1:] = (k[1:] != k[:-1]) | (np.diff(t) >= gap)
    bounds = np.append(np.flatnonzero(new), len(t))
    for s in np.flatnonzero(t[bounds[1:] - 1] - t[bounds[:-1]] > max_ms):  # rare: too long
        first = t[bounds[s]]
        for j in range(bounds[s] + 1, bounds[s + 1]):
            if t[j] - first > max_ms:
                new[j], first = True, t[j]
    heads = np.flatnonzero(new)
    sid = np.empty(len(t), dtype=np.int64)
    sid[order] = np.cumsum(new) - 1
    return sid, k[heads], t[heads], np.maximum.reduceat(t, heads) + gap


def window_rows(scenario: str, ev: pd.DataFrame, keys: np.ndarray, watermark: int) -> pd.DataFrame:
    """Closed windows of one scenario. `ev`: non-late events sorted by (event time, arrival),
    columns k (key code), t, ord and the metric columns."""
    long = _long_samples(scenario, ev)
    out = []
    for w_index, wd in enumerate(WINDOWS):
        if scenario not in wd.scenarios:
            continue
        if wd.kind == "session":
            sid, s_key, s_start, s_end = _sessions(ev, wd.size_ms, wd.step_ms)
            g = sid[long["i"].to_numpy()]
            closed = s_end[g] <= watermark
            rows = long[closed].assign(g=g[closed])
            agg = rows.groupby(["g", "m"], sort=False).agg(**_AGG).reset_index()
            g = agg["g"].to_numpy()
            agg["k"], agg["start"], agg["end"] = s_key[g], s_start[g], s_end[g]
        else:
            t = long["t"].to_numpy()
            n = wd.size_ms // wd.step_ms  # windows per event
            first_end = t - t % wd.step_ms + wd.step_ms
            if n == 1:
                rows = long.assign(end=first_end)
            else:
                rows = long.loc[long.index.repeat(n)]
                rows = rows.assign(end=np.repeat(first_end, n) + np.tile(np.arange(n), len(t)) * wd.step_ms)
            rows = rows[rows["end"].to_numpy() <= watermark]
            agg = rows.groupby(["k", "end", "m"], sort=False).agg(**_AGG).reset_index()
            agg["start"] = agg["end"] - wd.size_ms
        agg["w_index"] = w_index
        out.append(agg)
    if not out:
        return pd.DataFrame()
    df = pd.concat(out, ignore_index=True)
    df["key"] = keys[df["k"].to_numpy()]
    df = df.sort_values(["end", "key", "w_index", "m"], kind="stable", ignore_index=True)
    weighted = (scenario == "trades") & (df["m"] == 0) & (df["w"] > 0)
    df["weighted_avg"] = np.where(weighted, df["vw"] / df["w"].where(weighted, 1.0), np.nan)
    df["weighted_sum"] = np.where(weighted, df["vw"], np.nan)
    df["weight_total"] = np.where(weighted, df["w"], np.nan)
    df["m2"] = np.where(df["count"] >= 2, df["stddev"] ** 2 * (df["count"] - 1), 0.0)
    return df


def windows_table(df: pd.DataFrame, scenario: str, shard_id: str) -> pa.Table:
    names = np.array([w.name for w in WINDOWS], dtype=object)
    kinds = np.array([w.kind for w in WINDOWS], dtype=object)
    metrics = np.array(METRICS[scenario], dtype=object)
    wi = df["w_index"].to_numpy()
    return pa.table({
        "key": pa.array(df["key"].to_numpy(dtype=object), pa.string()),
        "window_name": pa.array(names[wi], pa.string()),
        "window_kind": pa.array(kinds[wi], pa.string()),
        "window_start": pa.array(df["start"].to_numpy(dtype=np.int64), _TS),
        "window_end": pa.array(df["end"].to_numpy(dtype=np.int64), _TS),
        "metric": pa.array(metrics[df["m"].to_numpy()], pa.string()),
        "count": pa.array(df["count"].to_numpy(dtype=np.int64)),
        **{c: pa.array(df[c].to_numpy(dtype=float), pa.float64(),
                       from_pandas=c in ("stddev", "weighted_avg"))
           for c in ("sum", "min", "max", "avg", "stddev", "first", "last", "weighted_avg")},
        "scope": pa.array(df["scope"].to_numpy(dtype=object), pa.string()),
        "shard_id": pa.array([shard_id] * len(df), pa.string()),
        **{c: pa.array(df[c].to_numpy(dtype=float), pa.float64(), from_pandas=True)
           for c in ("m2", "weighted_sum", "weight_total")},
    }, schema=WINDOWS_SCHEMA)


# --- anomalies: a plain EW z-score with pandas (not sluice's detectors) ------------------------


def anomaly_rows(scenario: str, windows: pd.DataFrame) -> pd.DataFrame:
    d_index = next(i for i, w in enumerate(WINDOWS) if w.name == DETECTION_WINDOW)
    frames = []
    for s, metric, reduce, transform, rollup_only in DETECTION_SERIES:
        if s != scenario or windows.empty:
            continue
        m = METRICS[scenario].index(metric)
        rows = windows[(windows["w_index"] == d_index) & (windows["m"] == m)]
        if rollup_only:
            rows = rows[rows["scope"] == "rollup"]
        if rows.empty:
            continue
        rows = rows.sort_values(["key", "end"], kind="stable")
        x = rows[reduce]
        by = rows["key"]
        if transform == "return":
            x = x / x.groupby(by).shift(1) - 1.0
        ew = x.groupby(by).ewm(span=ZSCORE_SPAN, min_periods=1)
        base = ew.mean().reset_index(level=0, drop=True).groupby(by).shift(1)
        std = ew.std().reset_index(level=0, drop=True).groupby(by).shift(1)
        seen = x.notna().groupby(by).cumsum() - 1
        spread = np.maximum(std.fillna(0.0), np.maximum(base.abs() * 1e-2, 1e-9))
        z = (x - base) / spread
        r = z.abs() / ZSCORE_THRESHOLD
        score = r * r / (1.0 + r * r)
        flagged = (seen >= ZSCORE_WARMUP) & (score >= 0.5) & x.notna()
        frames.append(pd.DataFrame({
            "key": rows["key"], "scope": rows["scope"], "metric": metric, "start": rows["start"], "end": rows["end"],
            "direction": np.where(z >= 0, "spike", "dip"), "score": score, "value": x,
            "baseline": base, "spread": spread})[flagged.to_numpy()])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def anomalies_table(df: pd.DataFrame, shard_id: str) -> pa.Table:
    n = len(df)
    return pa.table({
        "key": pa.array(df["key"].to_numpy(dtype=object), pa.string()),
        "metric": pa.array(df["metric"].to_numpy(dtype=object), pa.string()),
        "window_name": pa.array([DETECTION_WINDOW] * n, pa.string()),
        "window_start": pa.array(df["start"].to_numpy(dtype=np.int64), _TS),
        "window_end": pa.array(df["end"].to_numpy(dtype=np.int64), _TS),
        "detector": pa.array(["zscore"] * n, pa.string()),
        "direction": pa.array(df["direction"].to_numpy(dtype=object), pa.string()),
        **{c: pa.array(df[c].to_numpy(dtype=float)) for c in ("score", "value", "baseline", "spread")},
        "scope": pa.array(df["scope"].to_numpy(dtype=object), pa.string()),
        "shard_id": pa.array([shard_id] * n, pa.string()),
    }, schema=ANOMALIES_SCHEMA)


# --- one shard's batch ------------------------------------------------------------------------


@dataclass
class Result:
    objects: dict = field(default_factory=dict)  # object key → Parquet bytes
    stats: dict = field(default_factory=lambda: dict(
        records=0, events=0, quarantined=0, late=0, windows=0, anomalies=0, duplicate_events=0))


def _debug_str(text: str) -> str:
    """Rust's `{:?}` of a string, for the printable ids the decoder accepts."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _shard_of(event_id) -> str:
    if event_id and ":" in event_id:
        return event_id.split(":", 1)[0]
    return "shard-unknown"


def process_shard(shard_id: str, records: list, result: Result,
                  lateness_ms: int = ALLOWED_LATENESS_MS) -> None:
    """Decode, validate, window and encode one shard's records (Lambda's Kinesis record dicts)."""
    batch = (shard_id, records[0]["kinesis"]["sequenceNumber"],
             records[-1]["kinesis"]["sequenceNumber"])
    events = {s: [] for s in SCENARIOS}
    lineage = {s: [] for s in SCENARIOS}
    quarantine = []
    # Dedup by event_id (sluice_core::dedup): the first copy wins; the same id again with the
    # same bytes is dropped and counted, with other bytes quarantined; an event older than
    # the horizon behind its stream's watermark is not checked.
    seen = {s: {} for s in SCENARIOS}  # event_id → bytes of the first copy
    running = {}  # scenario → max of min(event time, arrival + max_clock_skew) so far
    for r in records:
        k = r["kinesis"]
        seq, arrival = k["sequenceNumber"], arrival_ms(k["approximateArrivalTimestamp"])
        try:
            data = base64.b64decode(k["data"], validate=True)
        except (binascii.Error, ValueError) as e:  # one bad record: its text is quarantined
            quarantine.append((seq, arrival, k.get("partitionKey", ""), "malformed_envelope",
                               f"data is not base64: {e}", k["data"].encode(), "unknown"))
            continue
        try:
            e = decode(data, arrival)
        except Rejected as why:
            quarantine.append((seq, arrival, k.get("partitionKey", ""), why.code, why.reason, data, None))
            continue
        scenario, event_id, t = e[0], e[1], e[2]
        first = seen[scenario].get(event_id)
        if first is not None:
            if first == data:
                result.stats["duplicate_events"] += 1
            else:
                quarantine.append((seq, arrival, k.get("partitionKey", ""), "duplicate_conflict",
                                   f"event_id {_debug_str(event_id)} was seen before with other bytes: "
                                   "the first copy stands", data, scenario))
            continue
        if scenario not in running or t >= running[scenario] - lateness_ms - DEDUP_HORIZON_MS:
            seen[scenario][event_id] = data
        running[scenario] = max(running.get(scenario, t), min(t, arrival + MAX_CLOCK_SKEW_MS))
        events[e[0]].append(e[1:])
        lineage[e[0]].append((seq, arrival))
    stats = result.stats
    stats["records"] += len(records)
    stats["quarantined"] += len(quarantine)

    for scenario in SCENARIOS:
        rows = events[scenario]
        if not rows:
            continue
        stats["events"] += len(rows)
        fields = RAW_FIELDS[scenario]
        n = len(rows)
        columns = list(zip(*rows))  # event_id, t, key, scenario fields...
        seqs, arrivals = zip(*lineage[scenario])
        t = np.fromiter(columns[1], dtype=np.int64, count=n)
        arrival = np.fromiter(arrivals, dtype=np.int64, count=n)
        schema = RAW_SCHEMAS[scenario]
        raw = pa.table([
            pa.array(columns[0], pa.string()), pa.array(t, _TS), pa.array(columns[2], pa.string()),
            *(pa.array(col, schema.field(f).type) for f, col in zip(fields, columns[3:])),
            pa.array([shard_id] * n, pa.string()), pa.array(seqs, pa.string()), pa.array(arrival, _TS),
            pa.nulls(n, pa.int64()),
        ], schema=schema)

        # Raw events, one object per event hour, in arrival order.
        hours = _hour(t)
        distinct_hours = np.unique(hours)
        for hour in distinct_hours:
            part = raw if len(distinct_hours) == 1 else raw.filter(hours == hour)
            result.objects[object_key(f"raw/scenario={scenario}", None, int(hour), batch)] = to_parquet(part)

        # Watermark before each event = max event time so far − lateness, where no event counts
        # beyond its arrival + the definition's max_clock_skew; older events are late.
        running_max = np.maximum.accumulate(np.minimum(t, arrival + MAX_CLOCK_SKEW_MS))
        watermark_before = np.empty_like(t)
        watermark_before[0] = np.iinfo(np.int64).min
        watermark_before[1:] = running_max[:-1] - lateness_ms
        late = t < watermark_before
        if late.any():
            stats["late"] += int(late.sum())
            idx = np.flatnonzero(late)
            late_table = pa.table([
                raw.column("event_id").take(idx), raw.column(2).take(idx),
                raw.column("event_time").take(idx), pa.array(watermark_before[idx], _TS),
                raw.column("shard_id").take(idx), raw.column("sequence_number").take(idx),
                raw.column("arrival_time").take(idx), pa.nulls(len(idx), pa.int64())], schema=LATE_SCHEMA)
            late_hours = hours[idx]
            for hour in np.unique(late_hours):
                result.objects[object_key("late", scenario, int(hour), batch)] = to_parquet(
                    late_table.filter(late_hours == hour))
        watermark = int(running_max[-1]) - lateness_ms

        # Windows over the events that were on time, in (event time, arrival) order.
        on_time = {"key": np.asarray(columns[2], dtype=object), "t": t, "ord": np.arange(n)}
        if scenario == "trades":
            on_time["price"] = np.asarray(columns[4], dtype=float)
            on_time["quantity"] = np.asarray(columns[5], dtype=float)
        elif scenario == "telemetry":
            for f, col in zip(fields, columns[3:]):
                on_time[f] = np.asarray(col, dtype=float)
        else:
            action = np.asarray(columns[4], dtype=object)
            on_time["actions"] = np.ones(n)
            on_time["purchase_amount"] = np.where(
                action == "purchase", np.asarray(columns[5], dtype=float), np.nan)
        on_time = pd.DataFrame(on_time)[~late]
        codes, keys = pd.factorize(on_time["key"])
        keys = np.asarray(keys, dtype=object)
        on_time["k"] = codes
        # The rollup is a series of its own (its own code), labelled by its name: a user key
        # spelled the same stays apart, told by `scope`.
        rollup_code = len(keys) if scenario in ROLLUP_SCENARIOS else -1
        if scenario in ROLLUP_SCENARIOS:
            rolled = on_time.assign(k=rollup_code)
            keys = np.append(keys, ROLLUP_NAME)
            on_time = pd.concat([on_time, rolled], ignore_index=True)
        on_time = on_time.sort_values(["t", "ord"], kind="stable", ignore_index=True)
        windows = window_rows(scenario, on_time, keys, watermark)
        if windows.empty:
            continue
        windows["scope"] = np.where(windows["k"].to_numpy() == rollup_code, "rollup", "key")
        stats["windows"] += len(windows)
        end_hours = _hour(windows["end"].to_numpy())
        for hour in np.unique(end_hours):
            table = windows_table(windows[end_hours == hour], scenario, shard_id)
            result.objects[object_key("windows", scenario, int(hour), batch)] = to_parquet(table)

        anomalies = anomaly_rows(scenario, windows)
        if not anomalies.empty:
            stats["anomalies"] += len(anomalies)
            a_hours = _hour(anomalies["end"].to_numpy())
            for hour in np.unique(a_hours):
                table = anomalies_table(anomalies[a_hours == hour], shard_id)
                result.objects[object_key("anomalies", scenario, int(hour), batch)] = to_parquet(table)

    if quarantine:
        parts = {}
        for q in quarantine:
            parts.setdefault((q[6] or quarantine_scenario(q[5]), _hour(q[1])), []).append(q[:6])
        for (scenario, hour), rows in sorted(parts.items()):
            seq, arrival, pk, code, reason, raw = zip(*rows)
            table = pa.table({
                "shard_id": pa.array([shard_id] * len(rows), pa.string()),
                "sequence_number": pa.array(seq, pa.string()),
                "arrival_time": pa.array(np.array(arrival, dtype=np.int64), _TS),
                "partition_key": pa.array(pk, pa.string()),
                "reason_code": pa.array(code, pa.string()),
                "reason": pa.array(reason, pa.string()),
                "raw": pa.array(raw, pa.binary()),
                "sub_sequence_number": pa.nulls(len(rows), pa.int64()),
            }, schema=QUARANTINE_SCHEMA)
            result.objects[object_key("quarantine", scenario, int(hour), batch)] = to_parquet(table)


def process_batch(event: dict, lateness_ms: int = ALLOWED_LATENESS_MS) -> Result:
    """Every shard of a Kinesis event, each on its own (as sluice keeps state per shard)."""
    shards: dict = {}
    for r in event.get("Records") or []:
        shards.setdefault((r.get("eventSourceARN") or "", _shard_of(r.get("eventID"))), []).append(r)
    result = Result()
    for (_, shard), records in sorted(shards.items()):
        process_shard(shard, records, result, lateness_ms)
    return result


# --- Lambda entry point ------------------------------------------------------------------------


class MemoryStore(dict):
    """Keeps objects in memory (benchmarks); a deployed handler would `s3.put_object` each."""

    def put(self, key: str, body: bytes) -> None:
        self[key] = body


class DirStore:
    def __init__(self, root: str):
        self.root = root

    def put(self, key: str, body: bytes) -> None:
        path = os.path.join(self.root, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(body)


STORE = DirStore(os.environ["REFERENCE_LAKE"]) if os.environ.get("REFERENCE_LAKE") else MemoryStore()


def handler(event, context):
    result = process_batch(event)
    for key, body in result.objects.items():
        STORE.put(key, body)
    return {"batchItemFailures": []}
