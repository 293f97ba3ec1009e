"""`edgeq lab run` over a real labgrid lab (coordinator + two exporters on 127.0.0.1, places
made with labgrid-client): two Pis on two exporter hosts, a place somebody else holds, a
device that is down, Ctrl-C and a crashed run, the phone on an exporter host, and a
coordinator that is not there."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import labgrid as lg
from tests.support.lab import write_inventory
from tests.support.procs import kill_device, wait_for

EDGEQ = str(Path(sys.executable).parent / "edgeq")


@pytest.fixture()
def lab_toml(tmp_path, labgrid_rig, lab_sections, artifacts):
    """Write lab.toml for the places tagged suite=SUITE ([labgrid] defaults from the rig)."""
    folder, _ = artifacts

    def write(suite: str, devices: dict | None = None, **lab_over) -> Path:
        sections = {k: dict(v) for k, v in lab_sections.items()}
        sections["lab"].update(
            inventory=f"{labgrid_rig['lab'].url}?suite={suite}",
            models=[str(folder / "model_int8.tflite")],
            **lab_over,
        )
        sections["labgrid"] = labgrid_rig["labgrid"]
        return write_inventory(tmp_path / f"lab-{suite}.toml", sections, devices or {})

    return write


def run_json(cli, inventory: Path, *extra: str) -> tuple[int, dict]:
    res = cli("lab", "run", "--inventory", inventory, "--json", *extra)
    return res.exit_code, json.loads(res.stdout)


def statuses(doc: dict) -> dict[str, str]:
    return {r["device"]: r["status"] for r in doc["results"]}


def coordinator_log(rig) -> str:
    return (rig["lab"].root / "coordinator.log").read_text()


def test_two_pis_on_two_exporters(cli, labgrid_rig, lab_toml):
    lab = labgrid_rig["lab"]
    code, doc = run_json(cli, lab_toml("pair"))
    assert code == 0, doc
    assert statuses(doc) == {"pi-a": "pass", "pi-b": "pass"}
    by_name = {d["name"]: d for d in doc["devices"]}
    assert by_name["pi-a"]["identity"] == f"labgrid://{lab.address}/pi-a"
    ports = {labgrid_rig["servers"][n].port for n in ("pi-1", "pi-2")}
    assert {int(d["address"].rsplit(":", 1)[1]) for d in by_name.values()} == ports
    # the place without a NetworkService is reported, not run
    assert any("place bare has no NetworkService" in n for n in doc["notices"])
    log = coordinator_log(labgrid_rig)
    for place in ("pi-a", "pi-b"):
        assert f"{place}: place acquired by" in log and f"{place}: place released" in log
    assert not {"pi-a", "pi-b"} & set(lab.acquired())
    assert lab.client("reservations").stdout.strip() == ""  # every reservation cancelled


def test_a_place_held_by_somebody_else_is_busy_and_stays_theirs(cli, labgrid_rig, lab_toml):
    lab = labgrid_rig["lab"]
    lab.client("-p", "held", "acquire", user="alice")
    try:
        t0 = time.monotonic()
        code, doc = run_json(cli, lab_toml("busy", lock_timeout_s=2))
        assert time.monotonic() - t0 < 60
        assert code == 0, doc  # busy is not a failure
        (rec,) = doc["results"]
        assert rec["status"] == "busy"
        assert "place held is busy: held by" in rec["reason"] and "/alice" in rec["reason"]
        info = lab.show("held")
        assert info["acquired"].endswith("/alice")  # never taken, never released
        assert "edgeq-health" not in info["tags"]  # and not quarantined
    finally:
        lab.client("-p", "held", "release", user="alice")


def test_a_device_that_is_down_is_quarantined_for_everybody(cli, labgrid_rig, lab_toml, tmp_path):
    lab, server = labgrid_rig["lab"], labgrid_rig["servers"]["pi-down"]
    inventory = lab_toml("down", retries=0)
    kill_device(server)
    try:
        code, doc = run_json(cli, inventory)
        assert code == 1
        (rec,) = doc["results"]
        assert rec["status"] == "quarantined" and "cannot connect" in rec["reason"]
        assert lab.show("flaky")["tags"].get("edgeq-health") == "bad"
        assert "flaky" not in lab.acquired()
        # the next run skips it without touching the device: the tag says why
        seen = len(coordinator_log(labgrid_rig))
        code, doc = run_json(cli, inventory)
        (rec,) = doc["results"]
        assert code == 1 and rec["status"] == "quarantined"
        assert "tagged edgeq-health=bad" in rec["reason"]
        assert "flaky: place acquired" not in coordinator_log(labgrid_rig)[seen:]
    finally:
        server.start()
    # repaired: --include-quarantined tries it, the check passes, the tag goes
    code, doc = run_json(cli, inventory, "--include-quarantined")
    assert code == 0, doc
    assert statuses(doc) == {"flaky": "pass"}
    assert "edgeq-health" not in lab.show("flaky")["tags"]
    db = sqlite3.connect(tmp_path / "history.sqlite")
    reasons = [r for (r,) in db.execute("SELECT reason FROM results ORDER BY rowid")]
    assert "cannot connect" in reasons[0]  # the reason stays in the history


def _start_run(inventory: Path, tmp_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "EDGEQ_CACHE_DIR": str(tmp_path / "cache"),
        "GRPC_ENABLE_FORK_SUPPORT": "0",
    }
    return subprocess.Popen(
        [EDGEQ, "lab", "run", "--inventory", str(inventory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def _markers(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "locks").glob("*.acquired"))


def test_ctrl_c_releases_every_place_and_a_crashed_run_is_reported(
    cli, labgrid_rig, lab_toml, tmp_path
):
    lab = labgrid_rig["lab"]
    # the benchmarks last ≥ 3 s, so both places are held when the signal comes
    inventory = lab_toml(
        "pair", devices={"pi-a": {"run": {"min_s": 3.0}}, "pi-b": {"run": {"min_s": 3.0}}}
    )
    proc = _start_run(inventory, tmp_path)
    if not wait_for(lambda: len(_markers(tmp_path)) == 2, timeout=90):
        proc.kill()
        pytest.fail("edgeq never held both places: " + proc.communicate()[1])
    assert set(lab.acquired()) >= {"pi-a", "pi-b"}
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert not {"pi-a", "pi-b"} & set(lab.acquired())
    assert _markers(tmp_path) == []

    # a run that dies without its finally (kill -9) leaves its places acquired …
    proc = _start_run(inventory, tmp_path)
    if not wait_for(lambda: len(_markers(tmp_path)) == 2, timeout=90):
        proc.kill()
        pytest.fail("edgeq never held both places: " + proc.communicate()[1])
    proc.kill()
    proc.communicate(timeout=30)
    held = lab.acquired()
    assert {"pi-a", "pi-b"} <= set(held)
    try:
        # … which the next run reports with the command that releases them, and leaves alone
        code, doc = run_json(cli, inventory)
        assert code == 0 and set(statuses(doc).values()) == {"busy"}
        notes = [n for n in doc["notices"] if "ended without releasing it" in n]
        assert len(notes) == 2
        assert f"labgrid-client -x {lab.address} -p pi-a release" in " ".join(notes)
        assert lab.acquired()["pi-a"] == held["pi-a"]
    finally:
        for place in ("pi-a", "pi-b"):
            lab.client("-p", place, "release", check=False)


def test_the_phone_on_an_exporter_host(cli, labgrid_rig, lab_toml):
    phone = labgrid_rig["phone"]
    if phone is None:
        pytest.skip("needs the adb client: apt-get install adb (.ci/run installs it)")
    from tests.support.benchmark_model import QEMU_ENV, binary

    overrides = {
        "adb_host": "127.0.0.1",  # the emulated phone's server, as the exporter host sees it
        "adb_port": phone.port,
        "benchmark_binary": str(binary("aarch64")),  # the real tool, under qemu-user
        "use_python_runner": False,
        "env": dict(QEMU_ENV),
    }
    code, doc = run_json(cli, lab_toml("phone", devices={"phone": overrides}))
    assert code == 0, doc
    (dev,) = doc["devices"]
    assert dev["transport"] == "adb+ssh" and dev["address"].startswith("edgeq_phone1 via adb on")
    assert statuses(doc) == {"phone": "pass"}
    assert "phone" not in labgrid_rig["lab"].acquired()


def test_coordinator_down_exits_3_and_records_nothing(cli, tmp_path, lab_sections):
    gone = lg.Lab(tmp_path / "gone").start()
    gone.stop()
    sections = {k: dict(v) for k, v in lab_sections.items()}
    sections["lab"]["inventory"] = f"{gone.url}?suite=pair"
    inventory = write_inventory(tmp_path / "lab.toml", sections, {})
    res = cli("lab", "run", "--inventory", inventory)
    assert res.exit_code == 3
    line = res.stderr.strip()
    assert "\n" not in line
    assert f"coordinator at {gone.address} is unreachable" in line
    assert f"labgrid-coordinator -l {gone.address}" in line
    db = tmp_path / "history.sqlite"
    if db.exists():
        assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM results").fetchone() == (0,)
