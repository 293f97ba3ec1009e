"""Defects found trying edgeq as a new user would, that need a real model or a real lab run:
the lab history keyed models by file name (so a different model was "a regression"), and
the local target's cache grew without bound."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

from edgeq.lab.history import History
from tests.support.config import write_config
from tests.support.faults import EASY
from tests.support.lab import write_inventory


def test_a_different_model_under_the_same_file_name_is_new_not_a_regression(
    cli, tmp_path, artifacts, lab_sections
):
    folder, _ = artifacts
    first = folder / "model_int8.tflite"
    other = tmp_path / "retrained" / "model_int8.tflite"  # what the next `convert` writes
    other.parent.mkdir()
    shutil.copyfile(folder / "model_float32.tflite", other)  # another model: 3.4x the size
    inv = write_inventory(tmp_path / "lab.toml", lab_sections, {"host": {"transport": "local"}})

    def lab_run(model, *extra):
        res = cli("lab", "run", "--inventory", inv, "--models", model, *extra, "--json")
        assert res.exit_code == 0, res.stderr
        (rec,) = json.loads(res.stdout)["results"]
        return rec

    def judged(rec, metric):
        (c,) = [c for c in rec["checks"] if c["name"] == f"regression:{metric}"]
        return c

    one = lab_run(first)
    two = lab_run(other, "--label", "retrained")
    assert two["model"] == "retrained" and two["artifact_sha256"] != one["artifact_sha256"]
    # keyed by content: the new model has no history yet — nothing to regress from
    for metric in ("model_bytes", "accuracy"):
        c = judged(two, metric)
        assert c["passed"] is None and c["message"].startswith("not judged: 0 of 1"), c
    assert two["findings"] == [] and two["status"] == "pass"
    # the first model again: judged against its own past only, and nothing "recovered"
    three = lab_run(first)
    assert judged(three, "model_bytes")["passed"] is True
    assert "within median" in judged(three, "model_bytes")["message"]
    assert three["findings"] == []
    with History(tmp_path / "history.sqlite") as h:
        assert len(h.series("host", one["artifact_sha256"])) == 2
        assert len(h.series("host", two["artifact_sha256"])) == 1
    report = cli("lab", "report", "--db", tmp_path / "history.sqlite", "-f", "md", "--out",
                 tmp_path / "r.md")  # fmt: skip
    assert report.exit_code == 0
    text = (tmp_path / "r.md").read_text()
    assert "regressed" not in text and "recovered" not in text


def test_the_local_cache_is_kept_under_its_cap(deploy_cli, tmp_path, artifacts):
    base = tmp_path / "edgeq-local"
    cache = base / "edgeq-cache"
    cache.mkdir(parents=True)
    junk = cache / ("0" * 64 + ".npz")  # another checkout's data, unused for a month
    junk.write_bytes(b"\0" * 400_000)
    month = time.time() - 30 * 86400
    os.utime(junk, (month, month))
    cfg = write_config(
        tmp_path / "edgeq.toml",
        {
            "here": {
                "transport": "local",
                "python": sys.executable,
                "workdir": str(base),
                "cache_max_mb": 0.3,
            }
        },
        EASY,
    )
    res = deploy_cli("here", cfg, artifacts[0] / "model_int8.tflite", "--json")
    assert res.exit_code == 0, res.stderr
    kept = sorted(p.suffix for p in cache.iterdir())
    assert not junk.exists()  # the least recently used went...
    assert kept == [".npz", ".py", ".tflite"]  # ...this run's files stayed
    assert sum(p.stat().st_size for p in cache.iterdir()) <= 0.3 * 1024 * 1024
