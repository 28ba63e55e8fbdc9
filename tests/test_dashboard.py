"""`sluice dashboard` over the pipeline's lake: every tile answers, the JSON of the tiles equals
DuckDB over the same Parquet files, and the page, loaded in a real headless Chromium (Debian's
package, driven over the DevTools protocol), draws every tile without a console error and shows
the same numbers. The screenshot is kept in $SLUICE_ARTIFACTS (tests/run.sh sets it)."""

import base64
import json
import os
import pathlib
import re
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import duckdb
import pytest
from browser import chromium, get_json

from conftest import sluice_binary

DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def dashboard(lake):
    proc = subprocess.Popen(
        [str(sluice_binary()), "dashboard", "--lake", str(lake["dir"]), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    match = re.search(r"http://\S+/", line)
    if not match:
        proc.kill()
        pytest.fail(f"sluice dashboard did not print its address: {line!r} {proc.stderr.read()}")
    yield match.group(0)
    proc.terminate()
    proc.wait(timeout=10)


def everything():
    return f"from=0&to={int(time.time() * 1000) + DAY_MS}"


def tile(dashboard, tile_id, query=None):
    data = get_json(f"{dashboard}api/tiles/{tile_id}?{query or everything()}")
    assert "error" not in data, data
    return {c["name"]: c["values"] for c in data["columns"]}


@pytest.fixture(scope="module")
def db(lake):
    con = duckdb.connect()
    root = lake["dir"]
    for table, files in (("trades", f"{root}/raw/scenario=trades/**/*.parquet"),
                         ("clickstream", f"{root}/raw/scenario=clickstream/**/*.parquet"),
                         ("windows", f"{root}/windows/**/*.parquet"),
                         ("alerts", f"{root}/alerts/**/*.parquet")):
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{files}', hive_partitioning = true)")
    return con


def test_every_tile_answers_with_the_columns_it_draws(dashboard):
    tiles = get_json(f"{dashboard}api/tiles")
    assert {"trades-ohlc-vwap", "clickstream-funnel", "pipeline-health", "telemetry-latency-p95"} <= {t["id"] for t in tiles}
    for t in tiles:
        data = get_json(f"{dashboard}api/tiles/{t['id']}?{everything()}")
        assert "error" not in data, data
        names = {c["name"] for c in data["columns"]}
        if names:
            wanted = {t.get("x"), t.get("series"), *t.get("y", []), *t.get("lines", [])} - {None}
            assert wanted <= names, (t["id"], wanted - names)


def test_bad_requests_are_answered_in_json_naming_what_is_wrong(dashboard):
    def refused(path):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{dashboard}{path}", timeout=30)
        return e.value.code, json.load(e.value)["error"]

    assert refused("api/tiles/no-such-tile") == (404, "no tile no-such-tile")
    assert refused("api/tiles/trades-total?from=abc") == (
        400, 'from must be epoch milliseconds (an integer), not "abc"')
    code, message = refused("api/tiles/trades-total?from=9999999999999999&to=-5")
    assert code == 400 and "is after to" in message
    # A quote in the key is a value, not SQL.
    key = urllib.parse.quote("x' OR '1'='1")
    assert tile(dashboard, "trades-total", f"{everything()}&key={key}")["trades"] == [0]


def test_a_tile_that_does_not_plan_stops_the_start_naming_it(sluice, lake, tmp_path):
    tiles = tmp_path / "tiles.toml"
    tiles.write_text('[[tile]]\nid = "mine"\ntitle = "Mine"\nchart = "stat"\ny = ["n"]\n'
                     'sql = "SELECT COUNT(*) AS n FROM trades WHERE symbl = \'$key\'"\n')
    proc = sluice("dashboard", "--lake", lake["dir"], "--tiles", tiles, "--port", "0", check=False, timeout=60)
    assert proc.returncode != 0 and "tile mine: its query does not plan" in proc.stderr, proc.stderr
    assert "symbl" in proc.stderr


def test_the_key_filter_and_the_time_range_narrow_the_rows(dashboard, db):
    (symbol,), = db.execute("SELECT MIN(symbol) FROM trades").fetchall()
    (count,), = db.execute("SELECT COUNT(*) FROM trades WHERE symbol = ?", [symbol]).fetchall()
    assert tile(dashboard, "trades-total", f"{everything()}&key={symbol}")["trades"] == [count]
    (first_ms, last_ms), = db.execute(
        "SELECT epoch_ms(MIN(event_time)), epoch_ms(MAX(event_time)) FROM trades").fetchall()
    middle = (first_ms + last_ms) // 2
    (before,), = db.execute(
        "SELECT COUNT(*) FROM trades WHERE epoch_ms(event_time) BETWEEN ? AND ?", [first_ms, middle]).fetchall()
    assert 0 < before < db.execute("SELECT COUNT(*) FROM trades").fetchone()[0]
    assert tile(dashboard, "trades-total", f"from={first_ms}&to={middle}")["trades"] == [before]


def test_tile_numbers_equal_duckdb_over_the_same_lake(dashboard, db):
    assert tile(dashboard, "trades-total")["trades"] == [db.execute("SELECT COUNT(*) FROM trades").fetchone()[0]]

    by_type = tile(dashboard, "trades-count-by-type")
    expected = db.execute(
        "SELECT trade_type, side, COUNT(*) FROM trades GROUP BY ALL ORDER BY trade_type, side").fetchall()
    assert list(zip(by_type["trade_type"], by_type["side"], by_type["trades"])) == expected

    funnel = tile(dashboard, "clickstream-funnel")
    expected = dict(db.execute("SELECT action, COUNT(DISTINCT user_id) FROM clickstream GROUP BY action").fetchall())
    assert dict(zip(funnel["action"], funnel["shoppers"])) == expected

    feed = tile(dashboard, "alerts-feed")
    sent = db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
    assert sent > 0 and len(feed["subject"]) == min(sent, 50)
    assert feed["sent_time"] == sorted(feed["sent_time"], reverse=True)

    # One candle per symbol and minute even when the symbol's trades were spread over shards:
    # high and low are the extremes over the shards' window rows.
    candles = tile(dashboard, "trades-ohlc-vwap")
    got = {(s, t): (hi, lo) for s, t, hi, lo in zip(candles["symbol"], candles["window_end"], candles["high"], candles["low"])}
    expected = {
        (s, t): (hi, lo)
        for s, t, hi, lo in db.execute(
            "SELECT key, epoch_ms(window_end), MAX(max), MIN(min) FROM windows "
            "WHERE scenario = 'trades' AND window_name = 'tumbling_1m' AND metric = 'price' AND scope = 'key' "
            "GROUP BY ALL").fetchall()
    }
    assert got == expected
    assert len(got) == len(candles["symbol"]), "no symbol has two candles for one minute"


# --- the page in a real browser --------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    with chromium() as tools:
        yield tools


PAGE_NUMBERS = """(() => {
  const option = (id) => echarts.getInstanceByDom(document.querySelector(`#tile-${id} .body`)).getOption();
  const byType = option('trades-count-by-type');
  const quantity = option('trades-quantity-by-symbol');
  return {
    total: document.querySelector('#tile-trades-total .stat-value').dataset.value,
    byTypeX: byType.xAxis[0].data,
    byType: byType.series.map((s) => ({ name: s.name, data: s.data })),
    quantityX: quantity.xAxis[0].data,
    quantity: quantity.series[0].data,
    funnel: option('clickstream-funnel').series[0].data.map((d) => [d.name, d.value]),
    tiles: window.sluice.tiles.length,
    failed: window.sluice.failed,
  };
})()"""


def test_the_page_draws_every_tile_and_shows_duckdbs_numbers(dashboard, browser, db):
    browser.call("Page.navigate", url=dashboard)
    browser.wait_for("window.sluice && window.sluice.ready === true")
    # Everything in the lake, not the last hour: the same rows DuckDB reads below.
    done = browser.evaluate("window.sluice.refreshes")
    browser.evaluate("(() => { const r = document.getElementById('range'); r.value = 'all';"
                     " r.dispatchEvent(new Event('change')); })()")
    browser.wait_for(f"window.sluice.refreshes > {done}")
    numbers = browser.evaluate(PAGE_NUMBERS)

    artifacts = pathlib.Path(os.environ.get("SLUICE_ARTIFACTS") or tempfile.mkdtemp(prefix="sluice-artifacts-"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    (artifacts / "dashboard.png").write_bytes(base64.b64decode(shot["data"]))

    assert browser.errors == [], browser.errors
    assert numbers["failed"] == {}
    assert numbers["tiles"] >= 20

    assert int(numbers["total"]) == db.execute("SELECT COUNT(*) FROM trades").fetchone()[0]

    expected = {(t, s): n for t, s, n in db.execute("SELECT trade_type, side, COUNT(*) FROM trades GROUP BY ALL").fetchall()}
    shown = {(t, s["name"]): n for s in numbers["byType"] for t, n in zip(numbers["byTypeX"], s["data"]) if n is not None}
    assert shown == expected

    expected = dict(db.execute("SELECT symbol, SUM(quantity) FROM trades GROUP BY symbol").fetchall())
    assert dict(zip(numbers["quantityX"], numbers["quantity"])) == expected

    expected = dict(db.execute("SELECT action, COUNT(DISTINCT user_id) FROM clickstream GROUP BY action").fetchall())
    assert dict(numbers["funnel"]) == expected
