"""No traceback without --debug: a fault injected into each command's transport (a bug, not
an edgeq error) ends in one line naming it, exit 1 — and what was measured is kept."""

from __future__ import annotations

import json

import pytest

from edgeq.lab.history import History
from edgeq.targets.local import LocalTarget
from tests.support.config import FAST_FLAGS, write_config
from tests.support.faults import EASY, error_line
from tests.support.lab import write_inventory

INTERNAL = "edgeq: internal error:"
HINT = "(run again with --debug for the traceback)"


def _boom(*args, **kw):
    raise RuntimeError("injected transport fault")


@pytest.fixture()
def faulty_local(monkeypatch):
    """Every command of the local transport fails with a bug."""
    monkeypatch.setattr(LocalTarget, "_exec", _boom)


@pytest.fixture()
def cfg(tmp_path):
    return write_config(tmp_path / "edgeq.toml", {}, EASY)


@pytest.mark.parametrize("command", ["deploy", "bench", "doctor", "targets"])
def test_a_fault_in_the_transport_is_one_line(
    command, cli, cfg, tmp_path, data_dir, artifacts, monkeypatch, faulty_local
):
    model = artifacts[0] / "model_int8.tflite"
    args = {
        "deploy": ["deploy", "--model", model, "--data", data_dir, "--results", tmp_path / "r"],
        "bench": ["bench", model, "--data", data_dir],
        "doctor": ["doctor"],
        "targets": ["targets"],
    }[command]
    if command == "targets":  # `targets` only asks each transport to describe itself
        monkeypatch.setattr(LocalTarget, "describe", _boom)
    res = cli(*args, "--config", cfg, *(FAST_FLAGS if command in ("deploy", "bench") else ()))
    assert res.exit_code == 1, res.stderr
    line = error_line(res.stderr, INTERNAL)
    assert line == f"{INTERNAL} RuntimeError: injected transport fault {HINT}"
    assert res.stderr.strip().splitlines()[-1] == line


def test_debug_shows_the_traceback_and_json_stays_one_document(cli, cfg, faulty_local):
    res = cli("--debug", "doctor", "--config", cfg)
    assert res.exit_code == 1
    assert "Traceback (most recent call last)" in res.stderr and "_boom" in res.stderr
    assert INTERNAL in res.stderr
    res = cli("doctor", "--config", cfg, "--json")
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 1
    assert doc["error"] == {
        "type": "RuntimeError",
        "message": "RuntimeError: injected transport fault",
        "internal": True,
    }


def test_lab_run_with_a_faulty_transport_keeps_the_other_results(
    cli, tmp_path, artifacts, lab_sections, monkeypatch
):
    real = LocalTarget._exec

    def flaky(self, command, timeout):
        if self.name == "bad":
            _boom()
        return real(self, command, timeout)

    monkeypatch.setattr(LocalTarget, "_exec", flaky)
    lab_sections["lab"]["models"] = [str(artifacts[0] / "model_int8.tflite")]
    inv = write_inventory(
        tmp_path / "lab.toml",
        lab_sections,
        {"good": {"transport": "local"}, "bad": {"transport": "local", "workdir": str(tmp_path)}},
    )
    res = cli("lab", "run", "--inventory", inv, "--json")
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    doc = json.loads(res.stdout)
    by = {r["device"]: r for r in doc["results"]}
    assert by["good"]["status"] == "pass"
    assert by["bad"]["status"] == "quarantined"
    assert "internal error: RuntimeError: injected transport fault" in by["bad"]["reason"]
    with History(tmp_path / "history.sqlite") as h:
        rows = {r["device"]: r for r in h.results()}
    assert rows["good"]["status"] == "pass" and rows["good"]["metrics"]["latency_p90"] > 0
    assert rows["bad"]["error_type"] == "RuntimeError"


def test_a_bug_after_the_measurement_saves_it_as_a_partial_record(
    cli, cfg, tmp_path, data_dir, artifacts, monkeypatch
):
    import edgeq.deploy

    def broken_judge(*a, **kw):
        raise ZeroDivisionError("injected fault in the verdict")

    monkeypatch.setattr(edgeq.deploy, "judge", broken_judge)
    model = artifacts[0] / "model_int8.tflite"
    res = cli(
        "deploy", "--model", model, "--data", data_dir, "--results", tmp_path / "r",
        "--config", cfg, *FAST_FLAGS,
    )  # fmt: skip
    assert res.exit_code == 1
    assert error_line(res.stderr, INTERNAL).startswith(f"{INTERNAL} ZeroDivisionError")
    (partial,) = (tmp_path / "r").glob("*.partial.json")
    doc = json.loads(partial.read_text())
    assert doc["schema"] == "edgeq.deploy-partial/1"
    assert doc["error"]["type"] == "ZeroDivisionError"
    assert doc["run"]["latency_ms"]["invoke"]["count"] >= 20
    assert str(partial) in res.stderr  # and the user is told where it is
