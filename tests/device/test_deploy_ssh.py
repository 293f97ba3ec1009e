"""`edgeq deploy` end to end over a real sshd to the "Pi" (its own venv: tflite-runtime 2.14,
numpy 1.x), through the CLI as a user runs it."""

from __future__ import annotations

import json

import pytest

from edgeq import evaluate
from edgeq.results import DeployResult

FAST = ["--runs", "30", "--min-s", "0.1", "--warmup-runs", "3"]


@pytest.fixture()
def deploy(deploy_cli, pi_config):
    def run(model, *extra):
        return deploy_cli("pi", pi_config, model, *FAST, *extra, fast=False)

    return run


def _budget(tmp_path, **values):
    f = tmp_path / "budget.toml"
    f.write_text("[budget]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()))
    return f


def test_generous_budget_passes_and_result_is_valid(deploy, artifacts, tmp_path, pi_workdir):
    out, _ = artifacts
    budget = _budget(
        tmp_path, max_model_kb=60, max_latency_ms=50, min_accuracy=0.3, max_accuracy_drop_pp=5
    )
    res = deploy(out / "model_int8.tflite", "--budget", budget, "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["ok"] is True and doc["verdict"]["status"] == "pass"
    assert doc["bytes_sent"] > 42_000  # runner + model + data went over
    run = doc["run"]
    assert run["environment"]["runtime"] == "tflite-runtime"
    assert run["environment"]["numpy"].startswith("1.")
    assert run["latency_ms"]["invoke"]["count"] >= 30
    assert set(run["phases_ms"]) == {
        "load",
        "allocate",
        "first_inference",
        "warmup",
        "steady_state",
    }
    saved = list((tmp_path / "results").glob("*_pi.json"))
    assert len(saved) == 1
    again = DeployResult.from_json(saved[0].read_text())  # validates the schema
    assert again.run["model"]["sha256"] == run["model"]["sha256"]
    assert sorted(p.name for p in pi_workdir.iterdir()) == ["edgeq-cache"]


def test_tight_budget_fails_with_exit_1(deploy, artifacts, tmp_path):
    out, _ = artifacts
    budget = _budget(tmp_path, max_model_kb=10, max_latency_ms=0.0001)
    res = deploy(out / "model_int8.tflite", "--budget", budget)
    assert res.exit_code == 1
    assert "verdict: FAIL" in res.stdout and "model_size" in res.stdout


def test_device_accuracy_equals_host_eval(deploy, artifacts, data_dir, tmp_path):
    """Host (ai-edge-litert) and device (tflite-runtime 2.14) within 0.1 pp, per mode."""
    out, _ = artifacts
    budget = _budget(
        tmp_path, min_accuracy=0, max_latency_ms=1000, max_model_kb=1000, max_accuracy_drop_pp=100
    )
    for mode in ("float32", "int8"):
        res = deploy(out / f"model_{mode}.tflite", "--budget", budget, "--json")
        assert res.exit_code == 0, res.stderr
        device = json.loads(res.stdout)["run"]["accuracy"]
        host = evaluate.evaluate(
            [out / f"model_{mode}.tflite"], data_path=data_dir, latency_runs=5
        ).rows[0]
        assert device["samples"] == host.samples == 1000
        assert abs(device["top1"] - host.top1) * 100 <= 0.1 + 1e-9, (mode, device, host)


def test_second_deploy_sends_zero_bytes(deploy, artifacts, tmp_path):
    out, _ = artifacts
    budget = _budget(
        tmp_path, min_accuracy=0, max_latency_ms=1000, max_model_kb=1000, max_accuracy_drop_pp=100
    )
    runs = [deploy(out / "model_float16.tflite", "--budget", budget, "--json") for _ in "12"]
    assert [r.exit_code for r in runs] == [0, 0], runs[0].stdout
    first, second = (json.loads(r.stdout) for r in runs)
    assert first["bytes_sent"] >= first["artifact"]["bytes"]
    assert second["bytes_sent"] == 0
    assert "model_float16.tflite" in {f["file"] for f in second["transfer"]["files"]}
    assert all(f["sent"] == 0 for f in second["transfer"]["files"])


def test_bench_measures_without_judging(cli, pi_config, artifacts):
    out, _ = artifacts
    res = cli(
        "bench",
        out / "model_int8.tflite",
        "--target",
        "pi",
        "--config",
        pi_config,
        "--no-data",
        "--runs",
        "20",
        "--min-s",
        "0",
        "--json",
    )
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["verdict"] is None and doc["run"]["accuracy"] is None


def test_doctor_and_targets(cli, pi_config):
    res = cli("doctor", "--target", "pi", "--config", pi_config, "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    names = {c["name"]: c["status"] for c in doc["checks"]}
    assert names["reachable"] == names["interpreter"] == names["numpy"] == "ok"
    assert doc["environment"]["runtime_version"] == "2.14.0"
    res = cli("targets", "--config", pi_config, "--json")
    rows = {t["name"]: t for t in json.loads(res.stdout)["targets"]}
    assert rows["pi"]["transport"] == "ssh" and rows["local"]["transport"] == "local"


def test_operator_too_new_for_the_device_runtime(deploy, artifacts, tmp_path, pi_workdir):
    """TF 2.21's dynamic-range model needs FULLY_CONNECTED v12; tflite-runtime 2.14 lacks it."""
    out, _ = artifacts
    res = deploy(out / "model_dynamic.tflite", "--budget", _budget(tmp_path, min_accuracy=0))
    assert res.exit_code == 2  # found on the host before the push (edgeq.compat)
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("edgeq: error:")]
    assert len(errors) == 1
    line = errors[0]
    assert "FULLY_CONNECTED" in line and "pip install -U ai-edge-litert" in line
    assert sorted(p.name for p in pi_workdir.iterdir()) == ["edgeq-cache"]
