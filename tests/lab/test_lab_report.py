"""The lab report from a history filled night by night (tests/support/report_history.py): a
regression after six passing nights, a quarantined device, a busy one, an error and a
recovery. The document says what broke, since when and where; every format renders it;
bands are the ones regress judged with; plots exist only where there is a trend."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from unittest import mock

import pytest

from edgeq.lab import regress, report
from edgeq.lab.history import History
from edgeq.lab.report import document, plots
from edgeq.status import RECORDED, look
from tests.support import report_history as rh


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return rh.fill(tmp_path_factory.mktemp("report") / "history.sqlite")


@pytest.fixture(scope="module")
def doc(db) -> dict:
    with History(db) as h:
        return report.build(h)


def result(doc, device, model="model_int8.tflite"):
    (r,) = [r for r in doc["results"] if r["device"] == device and r["model"] == model]
    return r


# --------------------------------------------------------------------------- document


def test_the_document_is_tonights_run_with_every_status(doc):
    assert doc["run"]["run_id"] == "run-08" and doc["run"]["status"] == "fail"
    assert doc["counts"] == {
        "pass": 3, "fail": 1, "suspect": 0, "error": 2, "quarantined": 2, "busy": 2
    }  # fmt: skip
    assert set(doc["counts"]) == set(RECORDED)
    assert {d["device"]: d["status"] for d in doc["devices"]} == {
        "pi4": "fail",
        "pi5": "quarantined",
        "pi3": "error",
        "phone": "pass",
        "shared": "busy",
    }
    # Worst first: the reader sees what broke before what passed.
    ranks = [look(r["status"]).rank for r in doc["results"]]
    assert ranks == sorted(ranks)


def test_matrix_has_one_cell_per_device_and_model_with_the_last_runs(db, doc):
    m = doc["matrix"]
    assert m["devices"] == list(rh.DEVICES)  # the inventory's order
    assert [x["label"] for x in m["models"]] == list(rh.MODELS)
    pairs = [(c["device"], c["model"]) for c in m["cells"]]
    assert sorted(pairs) == sorted((d, x) for d in rh.DEVICES for x in rh.MODELS)
    cell = {(c["device"], c["model"]): c for c in m["cells"]}
    pi4 = cell[("pi4", "model_int8.tflite")]
    assert [h["status"] for h in pi4["history"]] == ["pass"] * 6 + ["fail"] * 2
    assert [h["run_id"] for h in pi4["history"]][-1] == "run-08"  # newest last
    assert [h["status"] for h in cell[("phone", "model_int8.tflite")]["history"]][-2:] == [
        "error",
        "pass",
    ]
    anchors = {r["anchor"] for r in doc["results"]}
    assert {c["anchor"] for c in m["cells"]} == anchors and len(anchors) == 10
    with History(db) as h:
        short = report.build(h, matrix_runs=3)
    pi4 = next(c for c in short["matrix"]["cells"] if c["device"] == "pi4")
    assert [h["run_id"] for h in pi4["history"]] == ["run-06", "run-07", "run-08"]


def test_failing_list_says_since_when_and_the_first_bad_run(doc):
    failing = {(f["device"], f["model"]): f for f in doc["failing"]}
    assert set(failing) == {
        (d, x) for d in ("pi4", "pi5", "pi3") for x in rh.MODELS if (d, x) != ("pi4", rh.MODELS[1])
    }
    reg = failing[("pi4", "model_int8.tflite")]
    assert reg["status"] == "fail"
    assert reg["checks"] == ["regression:latency_p50", "regression:latency_p90"]
    assert reg["since_utc"].startswith("2025-03-07")
    assert reg["since_run_id"] == "run-07" and reg["last_pass_run_id"] == "run-06"
    q = failing[("pi5", "model_int8.tflite")]
    assert (q["status"], q["since_run_id"], q["last_pass_run_id"]) == (
        "quarantined",
        "run-07",
        "run-06",
    )
    e = failing[("pi3", "model_float32.tflite")]
    assert (e["status"], e["since_run_id"], e["last_pass_run_id"]) == ("error", "run-08", "run-07")
    # A busy device was somebody else's to use: not failing, but not hidden either.
    assert not any(f["device"] == "shared" for f in doc["failing"])
    assert {f["device"] for f in doc["recovered"]} == {"phone"}


def test_bands_are_the_ones_regress_judged_with(doc):
    r = result(doc, "pi4")
    points = r["trend"]
    assert len(points) == rh.NIGHTS
    with History(doc["db"]) as h:
        rows = {x["id"]: x for x in h.results(device="pi4", model="model_int8.tflite")}
    judged = 0
    for p in points:
        row = rows[p["result_id"]]
        for metric in ("latency_p90", "latency_p50", "accuracy", "model_bytes"):
            b = p["bands"].get(metric)
            check = next((c for c in row["checks"] if c["name"] == f"regression:{metric}"), None)
            if check is None or check["limit"] is None:
                assert b is None, (p["run_id"], metric)  # not judged: no band drawn
                continue
            judged += 1
            assert b["source"] == "policy"  # recomputed with the run's policy, not copied
            assert b["limit"] == pytest.approx(check["limit"], rel=1e-12)
            if metric.startswith("latency"):
                assert b["upper"] == pytest.approx(check["limit"], rel=1e-12)
                assert b["median"] - b["lower"] == pytest.approx(b["upper"] - b["median"])
    assert judged > 20
    # Noisy metrics need min_history = 3 passing runs before them: no band on nights 1-3.
    assert [bool(p["bands"].get("latency_p90")) for p in points[:4]] == [False] * 3 + [True]
    reg = {p["run_id"]: p["regressed"] for p in points}
    assert reg["run-07"] == reg["run-08"] == ["latency_p50", "latency_p90"]
    assert not any(reg[f"run-{n:02d}"] for n in range(1, 7))
    seventh = points[6]
    assert seventh["latency_p90"] > seventh["bands"]["latency_p90"]["upper"]


def test_a_band_follows_the_recorded_limit_when_a_device_override_judged_it():
    policy = regress.Policy()
    baseline = [2.0, 2.02, 1.98, 2.01]
    plain = document.band("latency_p90", 2.1, baseline, policy)
    # median 2.005, MAD 0.01: 3·1.4826·MAD = 0.044 < the 7 % floor
    assert plain["source"] == "policy" and plain["upper"] == pytest.approx(2.005 * 1.07)
    assert plain["lower"] == pytest.approx(2.005 * 0.93)
    wide = document.band("latency_p90", 2.1, baseline, policy, recorded_limit=2.005 * 1.25)
    assert wide["source"] == "check" and wide["upper"] == pytest.approx(2.005 * 1.25)
    assert wide["lower"] == pytest.approx(2.005 * 0.75)
    assert document.band("latency_p90", 2.1, baseline[:2], policy) is None  # < min_history
    acc = document.band("accuracy", 0.97, [0.98, 0.981], policy)
    assert acc["upper"] is None and acc["lower"] == pytest.approx(0.9795)


def test_environment_is_never_blank(doc):
    env = {d["device"]: d for d in doc["devices"]}
    pi4 = env["pi4"]["environment_summary"]
    assert pi4["SoC / model"] == "Cortex-A72" and pi4["arch"] == "aarch64"
    assert pi4["OS"] == "Debian GNU/Linux 12 (bookworm)"
    assert pi4["runtime"] == "tflite-runtime 2.14.0" and pi4["governor"] == "ondemand"
    assert re.fullmatch(r"\d\d\.\d °C", pi4["temperature"]) and pi4["throttling"] == "none"
    # Quarantined: what its health check saw tonight.
    pi5 = env["pi5"]
    assert pi5["environment_run_id"] == "run-08"
    assert pi5["environment_summary"]["temperature"] == "71.2 °C"
    assert pi5["environment_summary"]["governor"] == "powersave"
    # Unreachable tonight: the last environment on record, and from which run.
    assert env["pi3"]["environment_run_id"] == "run-07"
    assert env["pi3"]["environment_summary"]["OS"].startswith("Debian")
    phone = env["phone"]["environment_summary"]
    assert phone["SoC / model"] == "Google Pixel 7 · Tensor G2"
    assert phone["arch"] == "aarch64 · arm64-v8a" and phone["OS"] == "Android 14 (API 34)"
    assert phone["runtime"] == "benchmark_model" and phone["throttling"] == "–"
    for d in doc["devices"]:
        assert all(v.strip() for v in d["environment_summary"].values()), d


def test_environment_summary_of_nothing_says_unknown():
    assert set(document.environment_summary(None).values()) == {"–"}
    hot = document.environment_summary(
        {
            "throttling": {
                "raw": "0x50005",
                "under_voltage": True,
                "throttled": True,
                "under_voltage_occurred": True,
            },
            "emulated": True,
            "machine": "aarch64",
        }
    )
    assert hot["throttling"] == "under voltage, throttled, under voltage occurred (0x50005)"
    assert hot["arch"] == "aarch64 (emulated)"


def test_model_identity_is_the_content_and_the_name_is_the_label():
    row = {"model": "mnist int8 (QAT)", "artifact_sha256": "ab" * 32}
    assert document.model_key(row) == "ab" * 32  # as the history keys its series
    assert document.model_label(row) == "mnist int8 (QAT)"
    assert document.model_key({"model": "old.tflite", "artifact_sha256": None}) == "old.tflite"
    assert document.anchor({**row, "id": 7, "device": "pi 4"}) == "r7-pi-4-mnist-int8-QAT"


def test_unknown_run_and_empty_history_are_usage_errors(tmp_path, db):
    from edgeq.errors import UsageError

    with History(tmp_path / "empty.sqlite") as h, pytest.raises(UsageError, match="no runs yet"):
        report.build(h)
    with History(db) as h, pytest.raises(UsageError, match="no run 'nope'; recent runs: run-08"):
        report.build(h, "nope")


# --------------------------------------------------------------------------- plots


def test_trend_plots_only_where_there_is_a_trend(doc, tmp_path):
    # Six measured nights then the quarantine: a plot of what was measured, no empty axes.
    assert sorted(r["device"] for r in doc["results"]) == sorted(2 * rh.DEVICES)  # two models
    for r in doc["results"]:
        panels = [p[1] for p in plots.panels_for(r["trend"])]
        if r["device"] == "phone":  # benchmark_model measures no accuracy
            assert panels == ["latency (ms)", "size (KB)"]
        else:
            assert panels == ["latency (ms)", "accuracy (%)", "size (KB)"]
    # One night of history: no plot at all.
    with History(rh.fill(tmp_path / "one.sqlite", nights=1)) as h:
        one = report.build(h)
    assert len(one["results"]) == len(rh.DEVICES) * len(rh.MODELS)
    assert all(plots.trend_png(r) is None for r in one["results"])
    html = report.render(one, "html")
    assert "data:image/png" not in html and "No trend plot: 1 measured run" in html


def test_two_nights_get_a_sane_date_axis(tmp_path):
    with History(rh.fill(tmp_path / "two.sqlite", nights=2)) as h:
        two = report.build(h)
    r = next(r for r in two["results"] if r["device"] == "pi4")
    fig = plots.trend_figure(r)
    try:
        fig.canvas.draw()
        ax = fig.axes[-1]
        lo, hi = ax.get_xlim()  # days
        assert 1 <= hi - lo <= 2  # the two nights, not 2025 → 2029
        labels = [t.get_text() for t in ax.get_xticklabels()] + [
            ax.xaxis.get_offset_text().get_text()
        ]
        assert labels and not any(".000000" in t or "2026" in t for t in labels), labels
    finally:
        from edgeq.plotting import plt

        plt.close(fig)


def test_plot_marks_the_regression(doc, tmp_path):
    fig = plots.trend_figure(result(doc, "pi4"))
    try:
        labels = fig.axes[0].get_legend_handles_labels()[1]
        assert "regression" in labels and any("band" in x for x in labels)
        assert any(t.get_text() == "regression (p90)" for t in fig.axes[0].texts)
    finally:
        from edgeq.plotting import plt

        plt.close(fig)


# --------------------------------------------------------------------------- sweeps

SWEEP = {  # label: (model_bytes, accuracy, latency_p90)
    "int8-w8": (40_000, 0.970, 2.0),
    "int8-w16": (46_000, 0.985, 2.4),
    "int8-pruned": (50_000, 0.980, 2.2),
    "float16": (160_000, 0.986, 3.5),
    "float32-bad": (170_000, 0.950, 4.0),
}


def sweep_history(path: Path) -> Path:
    rh.fill(path, nights=1)  # (one night: no trend plots to draw, the test is the sweep's)
    with History(path) as h:
        h.start_run("sweep-1", "2025-03-02T09:00:00Z", settings={"kind": "sweep"})
        for i, (label, (size, acc, p90)) in enumerate(SWEEP.items()):
            row = rh.base_row(2, "pi4", f"{label}.tflite", "pass")
            row["run_id"] = "sweep-1"
            row["started_utc"] = f"2025-03-02T09:{i:02d}:00Z"
            row["metrics"] = {
                "model_bytes": size,
                "accuracy": acc,
                "latency_p90": p90,
                "latency_p50": p90 * 0.8,
            }
            h.record(row)
        h.finish_run("sweep-1", "pass", 0)
    return path


def test_pareto_front():
    pts = [{"x": x, "y": y} for x, y in ((1, 1), (2, 2), (2, 1), (3, 2), (0.5, 0))]
    assert document.pareto_front(pts, "x", "y") == [0, 1, 4]


def test_sweep_section_with_its_pareto_fronts(tmp_path):
    with History(sweep_history(tmp_path / "sweep.sqlite")) as h:
        doc = report.build(h)
    assert doc["run"]["run_id"] == "run-01"  # the nightly run, not the sweep after it
    sweep = doc["sweep"]
    assert sweep["run_id"] == "sweep-1" and sweep["latency_metric"] == "latency_p90"
    fronts = {c["model"]: (c["front_size"], c["front_latency"]) for c in sweep["candidates"]}
    assert fronts == {
        "int8-w8.tflite": (True, True),
        "int8-w16.tflite": (True, True),
        "int8-pruned.tflite": (False, True),  # bigger and worse than int8-w16, but faster
        "float16.tflite": (True, True),
        "float32-bad.tflite": (False, False),
    }
    png = plots.pareto_png(sweep)
    assert png.startswith(b"\x89PNG")
    out = Path(__file__).resolve().parents[2] / "out" / "lab-report"
    out.mkdir(parents=True, exist_ok=True)
    (out / "pareto.png").write_bytes(png)  # to look at
    html = report.render(doc, "html")
    assert 'id="sweep"' in html and 'alt="Pareto plot of sweep sweep-1"' in html
    assert "Sweep `sweep-1`: 5 candidates, 4 on a Pareto front" in report.render(doc, "md")


# --------------------------------------------------------------------------- formats


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids, self.hrefs, self.srcs, self.cells, self.tags = set(), [], [], [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if "id" in a:
            self.ids.add(a["id"])
        if "href" in a:
            self.hrefs.append(a["href"])
        if "src" in a:
            self.srcs.append(a["src"])
        if tag == "td" and "cell" in (a.get("class") or "").split():
            self.cells.append((a["data-device"], a["data-model"], a["data-status"]))


def test_every_format_renders_the_fixture(doc, tmp_path):
    paths = report.write_all(doc, list(report.FORMATS), tmp_path / "all")
    assert [p.name for p in paths] == [f"lab-report{f.suffix}" for f in report.FORMATS.values()]

    page = _Page()
    page.feed((tmp_path / "all" / "lab-report.html").read_text())
    assert len(page.cells) == 10 and len(set(page.cells)) == 10
    for href in page.hrefs:  # every link is to this page and lands somewhere (icon: none)
        assert href == "data:," or (href.startswith("#") and href[1:] in page.ids), href
    assert "script" not in page.tags
    assert page.srcs and all(s.startswith("data:image/png;base64,") for s in page.srcs)
    for s in page.srcs:
        assert base64.b64decode(s.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    assert len(page.srcs) == 10  # every series has six or more measured nights

    md = (tmp_path / "all" / "lab-report.md").read_text()
    overview = md.split("### Overview")[1].split("###")[0]
    assert "| pi4 | ✗ FAIL `✓✓✓✓✓✓✗✗` | ✓ PASS `✓✓✓✓✓✓✓✓` |" in overview
    assert "| shared | ◷ BUSY `✓✓✓✓✓✓✓◷` |" in overview
    assert "| pi5 | ⊘ QUARANTINED `✓✓✓✓✓✓⊘⊘` |" in overview
    assert "failing since 2025-03-07 (first bad run run-07, last pass run-06)" in md
    assert "### Recovered" in md and "phone × model_int8.tflite: passes again" in md

    suites = ET.fromstring((tmp_path / "all" / "lab-report.xml").read_bytes())
    busy = [c for c in suites.iter("testcase") if c.get("classname", "").startswith("shared.")]
    assert len(busy) == 2 and all(c.find("skipped") is not None for c in busy)
    assert int(suites.get("skipped")) >= 2 and int(suites.get("errors")) == 4
    failures = [c for c in suites.iter("testcase") if c.find("failure") is not None]
    assert {c.get("name") for c in failures} == {"regression:latency_p50", "regression:latency_p90"}

    back = json.loads((tmp_path / "all" / "lab-report.json").read_text())
    assert back["schema"] == report.REPORT_SCHEMA == "edgeq.lab-report/2"
    assert back["counts"] == doc["counts"] and len(back["matrix"]["cells"]) == 10


def test_html_escapes_what_the_history_says(tmp_path):
    path = rh.fill(tmp_path / "h.sqlite", nights=1)
    with History(path) as h:
        h.start_run("run-x", "2025-03-09T02:00:00Z")
        row = rh.base_row(9, "<b>pi</b>", "m.tflite", "error")
        row.update(run_id="run-x", reason="<script>alert(1)</script>", error_text="a & b < c")
        h.record(row)
        h.finish_run("run-x", "fail", 1)
        doc = report.build(h, "run-x")
    html = report.render(doc, "html")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;pi&lt;/b&gt;" in html and "a &amp; b &lt; c" in html


def test_a_new_format_is_one_registration(doc, tmp_path):
    csv = report.ReportFormat(
        "csv",
        ".csv",
        "one line per result",
        lambda d: "".join(f"{r['device']},{r['model']},{r['status']}\n" for r in d["results"]),
    )
    with mock.patch.dict(report.FORMATS.load()._items, {"csv": csv}):
        assert report.parse_formats(["md,csv"]) == ["md", "csv"]
        (path,) = report.write_all(doc, ["csv"], f"{tmp_path}/new/")
        assert path.name == "lab-report.csv" and "pi4,model_int8.tflite,fail" in path.read_text()
        assert "csv: one line per result" in report.registry.help_text()


def test_every_status_symbol_has_a_glyph_in_dejavu_sans():
    """Debian, matplotlib and headless Chromium fall back to DejaVu Sans: a symbol it lacks
    is drawn as a box (⧗ was)."""
    from matplotlib import font_manager, ft2font

    from edgeq.status import LOOKS

    font = ft2font.FT2Font(font_manager.findfont("DejaVu Sans"))
    missing = [lk.symbol for lk in LOOKS.values() if font.get_char_index(ord(lk.symbol)) == 0]
    assert missing == []


# --------------------------------------------------------------------------- the CLI


def test_report_out_folder_is_created_and_never_a_file(cli, db, tmp_path):
    # The README's command on a folder that does not exist: a folder, not a file `lab`.
    res = cli("lab", "report", "--db", db, "--format", "md", "--out", f"{tmp_path}/out/lab/")
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "out" / "lab" / "lab-report.md").is_file()
    # Several formats: a folder even without the slash, one file per format.
    res = cli(
        "lab", "report", "--db", db, "-f", "json,md", "-f", "junit", "--out", tmp_path / "many"
    )
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == [
        "lab-report.json",
        "lab-report.md",
        "lab-report.xml",
    ]
    assert res.stdout.count("wrote ") == 3
    # One format, no slash, no such folder: that file.
    res = cli("lab", "report", "--db", db, "--format", "json", "--out", tmp_path / "r.json")
    assert res.exit_code == 0 and json.loads((tmp_path / "r.json").read_text())["schema"]
    # Several formats into an existing file: refused, nothing written.
    res = cli("lab", "report", "--db", db, "--format", "md,json", "--out", tmp_path / "r.json")
    assert res.exit_code == 2
    assert "is a file, but writing 2 formats needs a folder" in res.stderr
    res = cli("lab", "report", "--db", db, "--format", "html,pdf", "--out", tmp_path / "x")
    assert res.exit_code == 2 and "unknown report format 'pdf'" in res.stderr
    assert "html, md, junit, json" in res.stderr and not (tmp_path / "x").exists()


def test_report_help_lists_the_registered_formats(cli):
    res = cli("lab", "report", "--help")
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())
    assert list(report.FORMATS) == ["html", "md", "junit", "json"]
    for f in report.FORMATS.values():
        assert f"{f.name}:" in text


def test_report_cli_json_names_every_file(cli, db, tmp_path):
    res = cli("lab", "report", "--db", db, "-f", "md,junit", "-o", tmp_path / "r", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["formats"] == ["md", "junit"] and out["run_id"] == "run-08"
    assert out["paths"] == [
        str(tmp_path / "r" / "lab-report.md"),
        str(tmp_path / "r" / "lab-report.xml"),
    ]
    assert out["counts"]["busy"] == 2
