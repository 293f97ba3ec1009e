"""Trustworthy latency on a real sshd "Pi" with a realistic sysfs (thermal zones, cpufreq,
the Pi firmware's throttle flags) that only the tests set (EDGEQ_SYSFS_ROOT): heating and
throttling mid-run make the run invalid with the right reasons, the budget then does not
judge its latency, a governor is pinned and restored (also after Ctrl-C), a cool-down
waits, repetitions give an interval, and a thread sweep keeps one block per setting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgeq import config, deploy
from edgeq.budget import Budget
from edgeq.settings import RunSettings
from tests.support.config import GENEROUS
from tests.support.sysfs import make_sysfs

LIGHT = {"runs": 20, "min_s": 0.0, "warmup_runs": 2, "warmup_min_s": 0.0}


def governors(root: Path) -> list[str]:
    return [
        (root / f"sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor").read_text().strip()
        for c in range(2)
    ]


@pytest.fixture()
def sysfs(tmp_path):
    return make_sysfs(tmp_path / "sysfs")


@pytest.fixture()
def pi(pi_server, pi_python, pi_workdir, sysfs):
    values = pi_server.target_values(
        python=pi_python, workdir=str(pi_workdir), env={"EDGEQ_SYSFS_ROOT": str(sysfs)}
    )
    return config.validate_target("pi", values, "test")


def _deploy(tcfg, artifacts, data_dir, on_progress=None, budget=True, **settings):
    model = artifacts[0] / "model_int8.tflite"
    return deploy.deploy(
        tcfg,
        model,
        "mnist",
        data_dir,
        Budget.from_dict(GENEROUS) if budget else None,
        RunSettings(**{**LIGHT, "limit": 200, **settings}),
        results_dir=None,
        progress=on_progress,
    )


def _when_running(action, delay=0.4):
    """A progress callback that runs `action` shortly after the benchmark starts."""
    done = threading.Event()

    def progress(msg: str) -> None:
        if "running the benchmark" in msg and not done.is_set():
            done.set()
            threading.Timer(delay, action).start()

    return progress


def test_heating_and_throttling_mid_run_make_it_invalid(pi, sysfs, artifacts, data_dir):
    def heat_and_throttle():
        (sysfs / "sys/class/thermal/thermal_zone0/temp").write_text("62000\n")
        (sysfs / "sys/devices/platform/soc/soc:firmware/get_throttled").write_text(
            "throttled=0x50005\n"
        )

    res = _deploy(pi, artifacts, data_dir, _when_running(heat_and_throttle), min_s=1.5)
    v = res.run["validity"]
    assert v["verdict"] == "invalid"
    assert v["throttled_during_run"] is True and v["temperature_rise_c"] == pytest.approx(17.0)
    text = "; ".join(v["reasons"])
    assert "throttled during the run (throttled, under-voltage; 0x50005)" in text
    assert "temperature rose by 17.0 °C" in text
    assert v["samples"][0]["temps_c"] == {"thermal_zone0": 45.0, "thermal_zone1": 41.0}
    lat = next(c for c in res.verdict.checks if c.metric == "latency_p90")
    assert lat.passed is None and lat.note.startswith("not judged: throttled during the run")
    assert res.verdict.passed  # not judged is neither pass nor fail


def test_accept_invalid_judges_it_anyway(pi, sysfs, artifacts, data_dir):
    def throttle():
        (sysfs / "sys/devices/platform/soc/soc:firmware/get_throttled").write_text("0x4\n")

    res = _deploy(pi, artifacts, data_dir, _when_running(throttle), min_s=1.5, accept_invalid=True)
    assert res.run["validity"]["verdict"] == "invalid"
    lat = next(c for c in res.verdict.checks if c.metric == "latency_p90")
    assert lat.passed is True and "judged although invalid" in lat.note


def test_a_frequency_change_under_a_fixed_governor_is_invalid(
    pi_server, pi_python, pi_workdir, tmp_path, artifacts, data_dir
):
    root = make_sysfs(tmp_path / "fixed", governor="performance")
    tcfg = config.validate_target(
        "pi",
        pi_server.target_values(
            python=pi_python, workdir=str(pi_workdir), env={"EDGEQ_SYSFS_ROOT": str(root)}
        ),
        "test",
    )

    def drop():
        for c in range(2):
            (root / f"sys/devices/system/cpu/cpu{c}/cpufreq/scaling_cur_freq").write_text(
                "600000\n"
            )

    res = _deploy(tcfg, artifacts, data_dir, _when_running(drop), min_s=1.5, budget=False)
    v = res.run["validity"]
    assert v["verdict"] == "invalid" and v["frequency_changed"] is True
    assert any("CPU frequency changed during the run (cpu0 600–1500 MHz" in r for r in v["reasons"])


def test_a_quiet_run_under_ondemand_is_only_suspect(pi, artifacts, data_dir):
    res = _deploy(pi, artifacts, data_dir)
    v = res.run["validity"]
    assert v["verdict"] == "suspect" and v["reasons"] == ["governor is ondemand, not performance"]
    lat = next(c for c in res.verdict.checks if c.metric == "latency_p90")
    assert lat.passed is True  # suspect runs are judged


def test_governor_is_pinned_for_the_run_and_restored(pi, sysfs, artifacts, data_dir):
    seen = []
    res = _deploy(
        pi,
        artifacts,
        data_dir,
        _when_running(lambda: seen.extend(governors(sysfs)), delay=0.1),
        pin_governor="performance",
        min_s=0.5,
    )
    assert seen == ["performance", "performance"]
    assert governors(sysfs) == ["ondemand", "ondemand"]
    pin = res.run["governor_pin"]
    assert pin["pinned"] is True and pin["warning"] is None
    assert res.run["validity"]["governor"] == "performance"


def test_a_governor_the_user_cannot_write_gives_a_warning_with_the_command(
    pi, sysfs, artifacts, data_dir
):
    cpu = sysfs / "sys/devices/system/cpu"
    subprocess.run(["mount", "--bind", str(cpu), str(cpu)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(cpu)], check=True)
        said = []
        res = _deploy(pi, artifacts, data_dir, said.append, pin_governor="performance")
    finally:
        subprocess.run(["umount", str(cpu)], check=True)
    pin = res.run["governor_pin"]
    assert pin["pinned"] is False and "sudo tee" in pin["warning"]
    assert any(m.startswith("warning: could not set the governor to performance") for m in said)
    assert governors(sysfs) == ["ondemand", "ondemand"]


def test_governor_is_restored_after_ctrl_c(pi_server, pi_python, pi_workdir, sysfs, artifacts,
                                           data_dir, tmp_path):  # fmt: skip
    from tests.support.config import write_config

    cfg = write_config(
        tmp_path / "edgeq.toml",
        {
            "pi": pi_server.target_values(
                python=pi_python, workdir=str(pi_workdir), env={"EDGEQ_SYSFS_ROOT": str(sysfs)}
            )
        },
    )
    edgeq = Path(sys.executable).with_name("edgeq")
    proc = subprocess.Popen(
        [str(edgeq), "deploy", "--target", "pi", "--config", str(cfg), "--model",
         str(artifacts[0] / "model_int8.tflite"), "--data", str(data_dir), "--no-data",
         "--min-s", "30", "--pin-governor", "performance", "--results", str(tmp_path / "r")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "EDGEQ_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline and governors(sysfs) != ["performance", "performance"]:
        time.sleep(0.1)
    assert governors(sysfs) == ["performance", "performance"]
    time.sleep(1.0)  # the runner is measuring now
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert governors(sysfs) == ["ondemand", "ondemand"]
    assert sorted(p.name for p in pi_workdir.iterdir() if p.name != "edgeq-cache") == []


def test_cooldown_waits_for_the_device(pi, sysfs, artifacts, data_dir):
    zone = sysfs / "sys/class/thermal/thermal_zone0/temp"
    zone.write_text("70000\n")
    threading.Timer(1.5, lambda: zone.write_text("44000\n")).start()
    res = _deploy(pi, artifacts, data_dir, cooldown_to=50, cooldown_max_s=30, budget=False)
    (c,) = res.run["cooldown"]
    assert c["reached"] is True and c["start_c"] == 70.0 and c["end_c"] <= 50
    assert 1.0 <= c["waited_s"] < 30


def test_cooldown_that_never_comes_makes_the_run_suspect(pi, sysfs, artifacts, data_dir):
    (sysfs / "sys/class/thermal/thermal_zone0/temp").write_text("70000\n")
    (sysfs / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").write_text("performance\n")
    (sysfs / "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor").write_text("performance\n")
    res = _deploy(pi, artifacts, data_dir, cooldown_to=50, cooldown_max_s=1, budget=False)
    assert res.run["cooldown"][0]["reached"] is False
    v = res.run["validity"]
    assert v["verdict"] == "suspect"
    assert "did not cool down to 50 °C within 1 s (hottest 70.0 °C)" in v["reasons"]


def test_repetitions_give_an_interval_and_the_budget_judges_its_upper_end(
    cli, tmp_path, artifacts, data_dir
):
    import json

    from tests.support.config import write_config

    cfg = write_config(tmp_path / "edgeq.toml", {}, GENEROUS)
    model = artifacts[0] / "model_int8.tflite"
    res = cli("deploy", "--config", cfg, "--model", model, "--data", data_dir, "--limit",
              "100", "--runs", "30", "--min-s", "0", "--warmup-runs", "2", "--repeat", "3",
              "--results", tmp_path / "r", "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    rep = doc["run"]["repeat"]
    assert rep["n"] == 3 and len(rep["runs"]) == 3
    p90 = rep["p90"]
    assert p90["ci_low"] <= p90["median"] <= p90["ci_high"]
    assert sorted(r["p90"] for r in rep["runs"])[1] == pytest.approx(p90["median"])
    lat = next(c for c in doc["verdict"]["checks"] if c["metric"] == "latency_p90")
    assert lat["measured"] == pytest.approx(p90["ci_high"])
    assert "upper end of the 95 % interval over 3 repetitions" in lat["note"]
    assert doc["run"]["accuracy"]["samples"] == 100  # accuracy once, not per repetition


def test_a_thread_sweep_keeps_one_block_per_setting(cli, tmp_path, artifacts, data_dir):
    import json

    res = cli("bench", artifacts[0] / "model_int8.tflite", "--no-data", "--threads", "1,2",
              "--runs", "30", "--min-s", "0", "--warmup-runs", "2", "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    sweep = json.loads(res.stdout)["run"]["threads_sweep"]
    assert [r["threads"] for r in sweep["settings"]] == [1, 2]
    assert sweep["best"] in (1, 2) and sweep["judged_by"] == "p50"
    by = {r["threads"]: r["repeat"]["p50"]["median"] for r in sweep["settings"]}
    assert by[sweep["best"]] == min(by.values())
