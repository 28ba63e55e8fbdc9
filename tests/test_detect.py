"""`sluice detect` on NAB files: same rows in the same order, clear errors, no panics."""

import csv

from conftest import REPO

NAB = REPO.parent / "shared" / "nab" / "data"


def test_scores_every_row_of_a_nab_series_in_order(sluice, tmp_path):
    source = NAB / "realAWSCloudwatch" / "ec2_cpu_utilization_24ae8d.csv"
    out = tmp_path / "scores.csv"
    sluice("detect", "--input", source, "--output", out)
    rows_in = list(csv.DictReader(source.open()))
    rows_out = list(csv.DictReader(out.open()))
    assert len(rows_out) == len(rows_in)
    assert [r["timestamp"] for r in rows_out] == [r["timestamp"] for r in rows_in]
    assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in rows_out)
    assert {r["flagged"] for r in rows_out} <= {"0", "1"}
    assert list(rows_out[0]) == ["timestamp", "value", "anomaly_score", "detector", "flagged", "baseline", "spread"]


def test_bad_input_is_an_error_naming_the_line_and_constant_series_work(sluice, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\r\n2014-01-01 00:00:00,1\r\n2014-01-01 00:05:00,oops\r\n")
    proc = sluice("detect", "--input", bad, "--output", tmp_path / "o.csv", check=False)
    assert proc.returncode != 0 and "line 3" in proc.stderr and "oops" in proc.stderr, proc.stderr
    flat = tmp_path / "flat.csv"
    flat.write_text("timestamp,value\n" + "".join(f"2014-01-01 00:{m:02d}:00,5\n" for m in range(60)))
    for detector in ("default", "calibrated", "spike_dip", "change_point", "zscore", "windowed_gaussian"):
        out = tmp_path / f"{detector}.csv"
        sluice("detect", "--input", flat, "--output", out, "--detector", detector)
        rows = list(csv.DictReader(out.open()))
        assert len(rows) == 60 and all(r["flagged"] == "0" for r in rows), detector
    unknown = sluice("detect", "--input", flat, "--output", tmp_path / "x.csv", "--detector", "magic", check=False)
    assert unknown.returncode != 0 and "windowed_gaussian" in unknown.stderr


def test_an_export_with_a_bom_gaps_other_columns_and_a_zone_is_read(sluice, tmp_path):
    # A Prometheus/Grafana-style export: BOM, RFC 3339 with Z, a NaN on line 62 and an empty
    # value on line 63, the value in a column named by the option.
    rows = [f"2026-11-24T{4 + m // 60:02d}:{m % 60:02d}:00Z,host-a,{m % 7}.25" for m in range(80)]
    rows[60] = "2026-11-24T05:00:00Z,host-a,NaN"
    rows[61] = "2026-11-24T05:01:00Z,host-a,"
    export = tmp_path / "export.csv"
    export.write_bytes(("\ufefftime,instance,cpu\n" + "\n".join(rows) + "\n").encode())
    out = tmp_path / "scores.csv"
    proc = sluice("detect", "--input", export, "--output", out, "--value-column", "cpu")
    scored = list(csv.DictReader(out.open()))
    assert len(scored) == 78
    assert "2 rows without a value skipped (the first on line 62" in proc.stderr, proc.stderr
    assert scored[60]["timestamp"] == "2026-11-24T05:02:00Z" and float(scored[60]["value"]) == 62 % 7 + 0.25
    # Epoch milliseconds, and zone-less local times under --zone: the same instants.
    epoch = tmp_path / "epoch.csv"
    epoch.write_text("ts,value\n1795496400000,1\n1795496460000,2\n")
    local = tmp_path / "local.csv"
    local.write_text("timestamp,value\n2026-11-24 06:00:00,1\n2026-11-24 06:01:00,2\n")
    plots = []
    for source, extra in ((epoch, ()), (local, ("--zone", "Europe/Berlin"))):
        target = tmp_path / f"{source.stem}.svg"
        sluice("detect", "--input", source, "--output", tmp_path / "o.csv", "--plot", target, *extra)
        plots.append(target.read_text())
    assert plots[0] == plots[1].replace("local.csv", "epoch.csv")
    bad_zone = sluice("detect", "--input", local, "--output", tmp_path / "o.csv", "--zone", "Mars/Olympus", check=False)
    assert bad_zone.returncode != 0 and "Mars/Olympus" in bad_zone.stderr
    for name, text in (("header.csv", "timestamp,value\n"), ("nan.csv", "timestamp,value\n2026-11-24T05:00:00Z,NaN\n")):
        empty = tmp_path / name
        empty.write_text(text)
        nothing = sluice("detect", "--input", empty, "--output", tmp_path / "o.csv", check=False)
        assert nothing.returncode != 0 and "no row has a value" in nothing.stderr, nothing.stderr
    unsorted = tmp_path / "unsorted.csv"
    unsorted.write_text("timestamp,value\n2026-11-24T05:02:00Z,1\n2026-11-24T05:01:00Z,2\n")
    warned = sluice("detect", "--input", unsorted, "--output", tmp_path / "o.csv")
    assert "times go backwards after 2026-11-24T05:02:00Z" in warned.stderr, warned.stderr
    semi = tmp_path / "semi.csv"
    semi.write_text("timestamp;value\n2026-11-24T05:00:00Z;1,5\n")
    refused = sluice("detect", "--input", semi, "--output", tmp_path / "o.csv", check=False)
    assert refused.returncode != 0 and "semicolons" in refused.stderr, refused.stderr


def test_default_detector_names_what_fired_and_flags_a_labelled_anomaly(sluice, tmp_path):
    # art_daily_jumpsup: a daily square wave whose high level jumps on one day; the jump is a
    # break of the daily pattern, not a point that stands out from its neighbours.
    source = NAB / "artificialWithAnomaly" / "art_daily_jumpsup.csv"
    out = tmp_path / "scores.csv"
    sluice("detect", "--input", source, "--output", out)
    rows = list(csv.DictReader(out.open()))
    flagged = [i for i, r in enumerate(rows) if r["flagged"] == "1"]
    window = range(2787, 3190)  # NAB's labelled window for this file, in rows
    assert any(i in window for i in flagged), flagged
    assert len([i for i in flagged if i >= 604 and i not in window]) <= 5, flagged
    fired = {rows[i]["detector"] for i in flagged if i in window}
    assert fired <= {"spike", "burst", "level_shift", "cycle_spike", "cycle_break"} and fired, fired


def test_plot_draws_the_series_its_band_and_exactly_the_flagged_points(sluice, tmp_path):
    import xml.etree.ElementTree as ET

    source = NAB / "artificialWithAnomaly" / "art_daily_jumpsup.csv"
    out, svg = tmp_path / "scores.csv", tmp_path / "plot.svg"
    sluice("detect", "--input", source, "--output", out, "--plot", svg)
    flagged = sum(r["flagged"] == "1" for r in csv.DictReader(out.open()))
    assert flagged > 0
    root = ET.parse(svg).getroot()  # well-formed SVG
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    # One red disc per flagged point, plus the legend's sample.
    red = [c for c in root.iter(f"{ns}circle") if c.get("fill", "").upper() in ("#FF0000", "RED")]
    assert len(red) == flagged + 1, (len(red), flagged)
    # The series and the baseline are polylines through every point; the band is a polygon.
    lines = [p for p in root.iter(f"{ns}polyline")]
    assert max(len(p.get("points").split()) for p in lines) == sum(1 for _ in source.open()) - 1
    assert any(True for _ in root.iter(f"{ns}polygon"))
    text = " ".join(t.text or "" for t in root.iter(f"{ns}text"))
    assert f"flagged (score ≥ 0.5): {flagged}" in text and "art_daily_jumpsup.csv" in text
