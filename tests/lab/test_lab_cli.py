"""`edgeq lab run` / `edgeq lab report` through the CLI on this machine's `local` device,
and the fresh-machine path of `make lab`: no models given, the lab trains its own."""

from __future__ import annotations

import json

from edgeq.lab import load_inventory, run_lab
from tests.support.lab import write_inventory
from tests.support.procs import processes_mentioning, wait_for


def test_local_lab_through_the_cli(cli, tmp_path, artifacts, lab_sections):
    folder, _ = artifacts
    inv = write_inventory(
        tmp_path / "lab.toml", lab_sections, {"host": {"transport": "local", "tags": ["x86"]}}
    )
    models = f"{folder / 'model_int8.tflite'},{folder / 'model_float16.tflite'}"
    res = cli("lab", "run", "--inventory", inv, "--models", models, "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["ok"] is True and doc["counts"] == {
        "pass": 2,
        "fail": 0,
        "suspect": 0,
        "error": 0,
        "quarantined": 0,
        "busy": 0,
    }
    assert [m["mode"] for m in doc["models"]] == ["int8", "float16"]
    assert {r["model"] for r in doc["results"]} == {"model_int8.tflite", "model_float16.tflite"}

    # A budget the float16 model cannot meet: exit 1, the failing check named.
    lab_sections["budget"] = {**lab_sections["budget"], "max_model_kb": 60}
    write_inventory(inv, lab_sections, {"host": {"transport": "local"}})
    res = cli("lab", "run", "--inventory", inv, "--models", models)
    assert res.exit_code == 1
    assert "model_size" in res.stdout and "1 passed, 1 failed" in res.stdout

    out_dir = tmp_path / "out" / "lab"  # not there yet: the trailing slash makes it a folder
    res = cli("lab", "report", "--inventory", inv, "--format", "md", "--out", f"{out_dir}/")
    assert res.exit_code == 0, res.stderr
    md = (out_dir / "lab-report.md").read_text()
    assert "## edgeq lab: FAIL" in md and "model_size" in md
    # float16 passed on the first run, fails on the second:
    assert f"failing since {doc['started_utc'][:10]} (last pass {doc['run_id']})" in md
    res = cli("lab", "report", "--db", tmp_path / "nope.sqlite", "--out", out_dir / "x.md")
    assert res.exit_code == 2 and "no lab history" in res.stderr


def test_without_models_the_lab_trains_and_converts_its_own(tmp_path, lab_sections, data_dir):
    lab_sections["lab"]["modes"] = ["int8"]
    lab_sections["model"] = {"epochs": 1, "batch_size": 64, "calibration_samples": 100}
    inv = load_inventory(
        write_inventory(tmp_path / "lab.toml", lab_sections, {"host": {"transport": "local"}})
    )
    assert inv.lab["models"] == []
    run = run_lab(inv)
    assert run.exit_code == 0, [r.reason for r in run.results]
    (model,) = run.models
    assert model.name == "model_int8.tflite" and model.mode == "int8"
    assert model.reference_top1 is not None  # the float32 sibling was converted too
    (r,) = run.results
    assert r.status == "pass" and r.metrics["accuracy_drop_pp"] < 20


def test_per_device_timeout_stops_a_slow_device_and_leaves_nothing_behind(
    tmp_path, artifacts, lab_sections
):
    folder, _ = artifacts
    wd = tmp_path / "slow-wd"
    lab_sections["lab"]["models"] = [
        str(folder / "model_int8.tflite"),
        str(folder / "model_float32.tflite"),
    ]
    devices = {
        "slow": {"transport": "local", "workdir": str(wd), "timeout_s": 3, "run": {"min_s": 30}},
        "quick": {"transport": "local"},
    }
    inv = load_inventory(write_inventory(tmp_path / "lab.toml", lab_sections, devices))
    run = run_lab(inv)
    assert run.exit_code == 1
    by = {(r.device, r.model): r for r in run.results}
    first, second = by[("slow", "model_int8.tflite")], by[("slow", "model_float32.tflite")]
    assert first.status == "error" and first.error_type == "CommandTimeout"
    assert "did not finish within" in first.reason and first.attempts == 1  # not retried
    assert first.bench_end - first.bench_start < 10
    assert second.status == "error" and "timeout_s = 3 s) ran out" in second.reason
    assert by[("quick", "model_int8.tflite")].status == "pass"  # the other device is fine
    assert wait_for(lambda: not processes_mentioning(str(wd)), 10)
