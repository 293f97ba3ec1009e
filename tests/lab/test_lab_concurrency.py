"""Two `edgeq lab run` processes on one device: the second waits on the device's lock (their
benchmark intervals, recorded in the history, never overlap) and the shared SQLite file
stays consistent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from edgeq.lab.history import History
from tests.support.lab import write_inventory


def test_two_processes_take_turns_on_one_device(tmp_path, pi_factory, artifacts, lab_sections):
    folder, _ = artifacts
    _, pi = pi_factory(tags=["pi"])
    # A benchmark of ≥ 1.5 s, so that the two runs certainly want the device at once.
    lab_sections["run"] = {**lab_sections["run"], "min_s": 1.5}
    lab_sections["lab"]["models"] = [str(folder / "model_int8.tflite")]
    inv = write_inventory(tmp_path / "lab.toml", lab_sections, {"pi": pi})
    edgeq = Path(sys.executable).with_name("edgeq")
    procs = [
        subprocess.Popen(
            [str(edgeq), "lab", "run", "--inventory", str(inv), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (stdout, stderr) in zip(procs, outs, strict=True):
        assert p.returncode == 0, stderr
        assert json.loads(stdout)["ok"] is True  # exactly one JSON object on stdout

    with History(Path(lab_sections["lab"]["db"])) as h:
        assert h.integrity() == "ok"
        runs = h.runs()
        rows = h.results()
    assert len(runs) == 2 and {r["status"] for r in runs} == {"pass"}
    assert {r["run_id"] for r in rows} == {r["run_id"] for r in runs}
    assert len(rows) == 2 and all(r["status"] == "pass" for r in rows)
    assert all(len(r["checks"]) >= 6 and r["metrics"]["latency_p90"] > 0 for r in rows)
    a, b = sorted(rows, key=lambda r: r["bench_start"])
    assert a["bench_end"] <= b["bench_start"], (a["bench_end"], b["bench_start"])
    # ...and they did contend: one waited for the other (one lease covers the health check
    # and the benchmarks, so the wait is counted once).
    waits = [r["metrics"]["lock_wait_s"] for r in rows]
    assert max(waits) > 1.0, waits
    assert all(r["bench_end"] - r["bench_start"] >= 1.5 for r in rows)
