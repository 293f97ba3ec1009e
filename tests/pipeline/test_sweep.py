"""`edgeq sweep`: a small grid on the local target — every candidate trained (cached),
converted, deployed and judged, recorded in the lab history as a sweep, the best named,
the Pareto fronts and plot written, a re-run resumed, and bad grids refused (exit 2)."""

from __future__ import annotations

import json

import pytest

from edgeq.lab.history import History

GRID = """
[sweep]
families = ["book", "bngap"]
widths = [0.25]
modes = ["int8"]
threads = [1]
epochs = 1
limit = 400
seed = 0
db = "history.sqlite"

[model]
batch_size = 64
calibration_samples = 100

[budget]
max_model_kb = {kb}
max_latency_ms = 100
min_accuracy = {acc}
max_accuracy_drop_pp = 100
"""
FAST = ("--runs", "10", "--min-s", "0", "--warmup-runs", "1", "--limit", "200")


def _cfg(tmp_path, kb=200, acc=0.0, extra=""):
    p = tmp_path / "edgeq.toml"
    p.write_text(GRID.format(kb=kb, acc=acc) + extra)
    return p


@pytest.fixture()
def swept(cli, tmp_path, data_dir):
    cfg = _cfg(tmp_path)
    out = tmp_path / "sweep"
    res = cli("sweep", "--target", "local", "--config", cfg, "--data", data_dir, "--out", out,
              *FAST, "--json")  # fmt: skip
    return res, out, cfg


def test_a_small_sweep_end_to_end(swept, tmp_path, cli, data_dir):
    res, out, cfg = swept
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [c["key"] for c in doc["candidates"]] == ["book-w0.25-int8-t1", "bngap-w0.25-int8-t1"]
    assert all(c["status"] == "pass" and c["accuracy"] is not None for c in doc["candidates"])
    by = {c["key"]: c for c in doc["candidates"]}
    assert doc["best"] == min(by, key=lambda k: by[k]["bytes"])  # smallest by default
    assert doc["best"] in doc["pareto"]["size_vs_accuracy"]
    assert doc["conclusion"].startswith("best under the budget (size): ")
    assert (out / "pareto.png").read_bytes().startswith(b"\x89PNG")
    assert "| candidate | status |" in (out / "sweep.md").read_text()
    assert json.loads((out / "sweep.json").read_text())["run_id"] == doc["run_id"]

    with History(tmp_path / "history.sqlite") as h:
        (run,) = h.runs()
        assert json.loads(run["settings_json"])["kind"] == "sweep"
        rows = h.results(run_id=doc["run_id"])
    assert {r["model"] for r in rows} == {"book w0.25 int8 t1", "bngap w0.25 int8 t1"}
    assert all(r["metrics"]["model_bytes"] > 0 and "accuracy" in r["metrics"] for r in rows)

    # the lab report embeds the sweep's Pareto plot
    rep = cli("lab", "report", "--db", tmp_path / "history.sqlite", "--format", "json",
              "--out", tmp_path / "r.json")  # fmt: skip
    assert rep.exit_code == 0, rep.stderr
    assert json.loads((tmp_path / "r.json").read_text())["sweep"]["run_id"] == doc["run_id"]

    # a re-run resumes: nothing is trained or measured again, the run id is kept
    again = cli("sweep", "--target", "local", "--config", cfg, "--data", data_dir, "--out", out,
                *FAST, "--json")  # fmt: skip
    assert again.exit_code == 0, again.stderr
    assert "resuming sweep" in again.stderr and "training" not in again.stderr
    assert json.loads(again.stdout)["run_id"] == doc["run_id"]


def test_no_candidate_passes_names_what_blocked_the_nearest(cli, tmp_path, data_dir):
    cfg = _cfg(tmp_path, acc=0.999)
    res = cli("sweep", "--target", "local", "--config", cfg, "--data", data_dir,
              "--out", tmp_path / "s", *FAST, "--json")  # fmt: skip
    assert res.exit_code == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["best"] is None
    assert "no candidate passes the budget; the nearest" in doc["conclusion"]
    assert "accuracy" in doc["conclusion"] and "blocked by" in doc["conclusion"]


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ('families = ["book", "resnet"]', "key 'families': unknown family 'resnet'"),
        ("widths = []", "key 'widths' is empty"),
        ("widths = [9.0]", "key 'widths'"),
        ('modes = ["int4"]', "key 'modes': unknown mode 'int4'"),
        ("threads = [0]", "key 'threads'"),
        ("epochs = 0", "key 'epochs' must be >= 1"),
        ("colour = 1", "unknown key 'colour'"),
    ],
)
def test_bad_grids_are_one_line_exit_2(cli, tmp_path, extra, fragment):
    key = extra.split(" = ")[0]
    text = "\n".join(
        ln for ln in GRID.format(kb=50, acc=0.5).splitlines() if not ln.startswith(f"{key} =")
    )
    cfg = tmp_path / "edgeq.toml"
    cfg.write_text(text.replace("[sweep]\n", f"[sweep]\n{extra}\n"))
    res = cli("sweep", "--target", "local", "--config", cfg, "--out", tmp_path / "s")
    assert res.exit_code == 2, res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("edgeq: error:") and fragment in line and "[sweep]" in line
