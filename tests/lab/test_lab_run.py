"""A lab of six devices on this machine — four real sshd "Pis", the local host and the
emulated Android phone (driven by the real adb client) — where one Pi is killed in the
middle of its benchmark and one has the wrong key. The others pass; the history holds
every row with the right verdict and reason; reports in every format are produced and
valid. Without an adb client the phone is left out and the lab has five devices."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sqlite3
import threading
import xml.etree.ElementTree as ET

import pytest

from edgeq.lab import load_inventory, run_lab
from edgeq.lab.history import History
from tests.support import sshd
from tests.support.lab import write_inventory
from tests.support.procs import kill_device, processes_mentioning, wait_for

#: The emulated phone joins when the adb client and edgeq's adb transport are both here.
PHONE = bool(shutil.which("adb") and importlib.util.find_spec("edgeq.targets.adb"))
ADB_ENV = ("ANDROID_SERIAL", "ANDROID_ADB_SERVER_PORT", "ANDROID_ADB_SERVER_ADDRESS")


@pytest.fixture()
def phone(tmp_path, monkeypatch):
    """The emulated Android phone as a [devices.NAME] table (None without adb)."""
    if not PHONE:
        yield None
        return
    from tests.support.adb_device import EmulatedAdbServer, find_real_adb_servers
    from tests.support.android import adb_values
    from tests.support.benchmark_model import QEMU_ENV, binary

    for var in ADB_ENV:
        monkeypatch.delenv(var, raising=False)
    aarch64 = binary("aarch64")  # the real tool, run under qemu-user on this host
    emu = EmulatedAdbServer(tmp_path / "phone").start()
    # benchmark_model prints no p90: the lab's p90 budget is judged at its p95.
    yield adb_values(
        emu, benchmark_binary=str(aarch64), use_python_runner=False, tags=["android"],
        env=dict(QEMU_ENV),
    )  # fmt: skip
    emu.stop()
    assert find_real_adb_servers(emu.port) == []


@pytest.fixture()
def lab(tmp_path, pi_factory, artifacts, lab_sections, phone):
    folder, _ = artifacts
    pi_a = pi_factory(tags=["pi", "arm"])
    pi_b = pi_factory(tags=["pi"])
    # The victim's benchmark lasts ≥ 4 s, so there is time to pull its plug mid-run.
    victim = pi_factory(tags=["pi"], run={"min_s": 4.0}, timeout_s=60)
    wrong_key = sshd.keygen(tmp_path / "not_authorized_key")
    locked_out = pi_factory(tags=["pi"], key_file=str(wrong_key))
    lab_sections["lab"]["models"] = [
        str(folder / "model_int8.tflite"),
        str(folder / "model_float32.tflite"),
    ]
    # These "devices" share the host's two cores, which a real lab's devices never do: run
    # at once, the emulated phone's benchmark_model (CPU-bound under qemu-user) is truly
    # contended by the others and rightly judged suspect. One at a time, each is measured
    # undisturbed by the lab itself.
    lab_sections["lab"]["parallel"] = 1
    inv = write_inventory(
        tmp_path / "lab.toml",
        lab_sections,
        {
            "pi-a": pi_a[1],
            "pi-b": pi_b[1],
            "victim": victim[1],
            "locked-out": locked_out[1],
            "host": {"transport": "local", "tags": ["host"]},
            **({"phone": phone} if phone else {}),
        },
    )
    return {"inventory": inv, "victim": victim, "victim_workdir": victim[1]["workdir"]}


def test_lab_survives_a_killed_and_a_locked_out_device(lab, cli, tmp_path):
    inv = load_inventory(lab["inventory"])
    server, _ = lab["victim"]
    killed = threading.Event()

    def on_event(ev):
        # Deploy says "running the benchmark on victim" just before the runner starts.
        if ev.device == "victim" and "running the benchmark" in ev.message and not killed.is_set():
            killed.set()
            threading.Timer(1.0, kill_device, args=(server,)).start()

    run = run_lab(inv, on_event=on_event)

    assert killed.is_set()
    assert run.exit_code == 1 and not run.ok
    status = {(r.device, r.model): r for r in run.results}
    working = ("pi-a", "pi-b", "host", *(("phone",) if PHONE else ()))
    n = 2 * (len(working) + 2)
    assert len(status) == n  # every device × model recorded
    for device in working:
        for model in ("model_int8.tflite", "model_float32.tflite"):
            r = status[(device, model)]
            assert r.status == "pass", (device, model, r.reason)
            assert r.metrics["latency_mean"] > 0 and 0.3 <= r.metrics["accuracy"] <= 1
    # The killed Pi: its first benchmark lost the connection, the retries were refused.
    first = status[("victim", "model_int8.tflite")]
    assert first.status == "error" and first.error_type == "ConnectError"
    assert first.attempts == 3 and "after 3 attempts" in first.reason
    attempt1 = first.error_text.splitlines()[0]
    assert re.search(r"closed the session|connection .* lost", attempt1), first.error_text
    assert "cannot connect" in first.error_text.splitlines()[-1]
    assert status[("victim", "model_float32.tflite")].status == "error"
    # The locked-out Pi never got past the health check.
    for model in ("model_int8.tflite", "model_float32.tflite"):
        r = status[("locked-out", model)]
        assert r.status == "quarantined"
        assert "reachable" in r.reason and "refused" in r.reason and "ssh-copy-id" in r.reason
    devices = {d.name: d.status for d in run.devices}
    assert devices == {
        **dict.fromkeys(working, "pass"),
        "victim": "error",
        "locked-out": "quarantined",
    }
    # Nothing of the victim is left running.
    assert wait_for(lambda: not processes_mentioning(lab["victim_workdir"]), 15), (
        processes_mentioning(lab["victim_workdir"])
    )

    # ---- the history holds every row, verdict and reason
    db = inv.db_path
    with History(db) as h:
        assert h.integrity() == "ok"
        (row,) = h.runs()
        assert row["run_id"] == run.run_id and row["status"] == "fail" and row["exit_code"] == 1
        assert row["edgeq_version"] and row["finished_utc"]
        rows = h.results(run_id=run.run_id)
    assert len(rows) == n
    by = {(r["device"], r["model"]): r for r in rows}
    for key, rec in status.items():
        assert by[key]["status"] == rec.status
        assert by[key]["reason"] == rec.reason
        assert by[key]["artifact_sha256"] == rec.artifact_sha256
    if PHONE:
        ph = by[("phone", "model_int8.tflite")]
        assert ph["result"]["run"]["runner"]["name"] == "benchmark_model"
        assert "budget:latency_p90" in {c["name"] for c in ph["checks"]}
        lat = next(c for c in ph["result"]["verdict"]["checks"] if c["metric"] == "latency_p90")
        assert lat["judged_at"] == "p95"  # the tool's own p95, not an invented p90
    ok = by[("pi-a", "model_int8.tflite")]
    assert ok["environment"]["runtime"] == "tflite-runtime"
    assert ok["result"]["schema"] == "edgeq.deploy/1"
    assert {c["name"] for c in ok["checks"]} >= {
        "health",
        "run",
        "budget:model_size",
        "budget:latency_p90",
        "budget:accuracy",
        "regression:latency_p90",
    }
    assert ok["metrics"]["model_bytes"] == ok["result"]["artifact"]["bytes"]
    assert by[("victim", "model_int8.tflite")]["error_type"] == "ConnectError"
    assert by[("locked-out", "model_float32.tflite")]["status"] == "quarantined"

    # ---- reports in every format, from one call into a folder that does not exist yet
    folder = tmp_path / "reports" / "lab"
    res = cli(
        "lab", "report", "--db", db, "-f", "json,md", "-f", "junit,html", "--out", folder, "--json"
    )
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["run_id"] == run.run_id and doc["run_status"] == "fail"
    assert doc["formats"] == ["json", "md", "junit", "html"]
    outs = {
        f: (folder / f"lab-report{ext}").read_text()
        for f, ext in (("json", ".json"), ("md", ".md"), ("junit", ".xml"), ("html", ".html"))
    }
    assert sorted(doc["paths"]) == sorted(str(p) for p in folder.iterdir())

    report = json.loads(outs["json"])
    assert report["schema"] == "edgeq.lab-report/2"
    assert report["counts"] == {
        "pass": n - 4, "fail": 0, "suspect": 0, "error": 2, "quarantined": 2, "busy": 0
    }  # fmt: skip
    assert {d["device"]: d["status"] for d in report["devices"]} == devices
    env = {d["device"]: d["environment_summary"] for d in report["devices"]}
    assert env["pi-a"]["runtime"].startswith("tflite-runtime")
    assert env["locked-out"]["OS"] == "–"  # never reached: nothing known, and said so

    suites = ET.fromstring(outs["junit"].encode())
    cases = suites.findall(".//testcase")
    assert int(suites.get("tests")) == len(cases) == sum(len(r["checks"]) for r in rows)
    errors = {(c.get("classname"), c.get("name")) for c in cases if c.find("error") is not None}
    assert errors == {
        ("victim.model_int8.tflite", "run"),
        ("victim.model_float32.tflite", "run"),
        ("locked-out.model_int8.tflite", "health"),
        ("locked-out.model_float32.tflite", "health"),
    }
    assert int(suites.get("errors")) == 4 and int(suites.get("failures")) == 0
    err = next(c for c in cases if c.get("classname") == "victim.model_int8.tflite").find("error")
    assert err is not None and "after 3 attempts" in err.get("message")

    md = outs["md"]
    assert "## edgeq lab: FAIL" in md and "**QUARANTINED**" in md and "**ERROR**" in md
    assert "failing since" in md and md.count("| pass |") == n - 4

    html = outs["html"]
    # One night is no trend: not a single plot (no one-point axes spanning years).
    assert "data:image/png" not in html and html.count("No trend plot: 1 measured run") == n - 4
    assert html.count('<td class="cell ') == n
    assert "locked-out" in html and "victim" in html

    # The file is a plain SQLite database any tool can read.
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] >= 1
        assert con.execute("SELECT COUNT(*) FROM results").fetchone()[0] == n
