"""The history store (versioned schema, migrations, atomic results) and the device lock
(exclusive across threads and processes, released when its holder dies)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from edgeq.devicelock import DeviceBusy, DeviceLock, lock_file
from edgeq.errors import ConfigError
from edgeq.lab import history as history_mod
from edgeq.lab.history import SCHEMA_VERSION, History

pytestmark = pytest.mark.unit  # the fast tier: `make test-unit`


def _row(run_id="r1", **over):
    row = {
        "run_id": run_id,
        "device": "pi",
        "transport": "ssh",
        "model": "m.tflite",
        "status": "pass",
        "started_utc": "2025-03-01T02:00:00Z",
        "finished_utc": "2025-03-01T02:01:00Z",
        "metrics": {"latency_p90": 1.5, "accuracy": 0.9},
        "checks": [{"name": "run", "kind": "run", "passed": True, "message": "ran"}],
    }
    row.update(over)
    return row


def test_fresh_file_gets_the_current_schema_and_reopens(tmp_path):
    path = tmp_path / "h.sqlite"
    with History(path) as h:
        assert h.version == SCHEMA_VERSION
        h.start_run("r1", "2025-03-01T02:00:00Z", origin={"host": "lab1"})
        rid = h.record(_row())
        (r,) = h.results()
        assert r["id"] == rid and r["metrics"] == {"latency_p90": 1.5, "accuracy": 0.9}
        assert r["checks"][0]["passed"] is True
    with History(path) as h:  # reopening migrates nothing and loses nothing
        assert h.version == SCHEMA_VERSION and len(h.results()) == 1
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        applied = [v for (v,) in con.execute("SELECT version FROM schema_migrations")]
        assert applied == list(range(1, SCHEMA_VERSION + 1))


def test_pending_migrations_are_applied_in_order_keeping_the_data(tmp_path, monkeypatch):
    path = tmp_path / "h.sqlite"
    with History(path) as h:
        h.start_run("r1", "2025-03-01T02:00:00Z")
        h.record(_row())
    nxt = SCHEMA_VERSION + 1
    monkeypatch.setitem(
        history_mod.MIGRATIONS,
        nxt,
        (
            "ALTER TABLE results ADD COLUMN board_revision TEXT",
            "UPDATE results SET board_revision = 'unknown'",
        ),
    )
    monkeypatch.setattr(history_mod, "SCHEMA_VERSION", nxt)
    with History(path) as h:
        assert h.version == nxt
        (r,) = h.results()
        assert r["board_revision"] == "unknown" and r["metrics"]["latency_p90"] == 1.5


def test_newer_or_foreign_files_are_refused(tmp_path):
    path = tmp_path / "h.sqlite"
    History(path).close()
    with sqlite3.connect(path) as con:
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    with pytest.raises(ConfigError, match="newer than this edgeq"):
        History(path)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a usable edgeq lab history"):
        History(junk)


def test_a_result_is_written_whole_or_not_at_all(tmp_path):
    with History(tmp_path / "h.sqlite") as h:
        h.start_run("r1", "2025-03-01T02:00:00Z")
        twice = [{"name": "run", "kind": "run", "passed": True}] * 2  # violates the key
        with pytest.raises(sqlite3.IntegrityError):
            h.record(_row(checks=twice))
        assert h.results() == []
        with pytest.raises(ValueError, match="status"):
            h.record(_row(status="maybe"))
        h.record(_row())
        assert len(h.results()) == 1 and h.integrity() == "ok"


def test_lock_excludes_a_second_holder_and_names_the_first(tmp_path):
    first = DeviceLock("ssh://pi@10.0.0.7:22", tmp_path, owner={"run_id": "run-A"})
    with first:
        assert first.held
        second = DeviceLock("ssh://pi@10.0.0.7:22", tmp_path, timeout_s=0.3)
        waits = []
        t0 = time.monotonic()
        with pytest.raises(DeviceBusy, match=r"busy: held by pid \d+ .*\(run run-A\)"):
            second.acquire(on_wait=waits.append)
        assert time.monotonic() - t0 >= 0.3 and "run-A" in waits[0]
        other = DeviceLock("ssh://pi@10.0.0.8:22", tmp_path, timeout_s=0.1)
        with other:  # another device is not blocked
            assert other.held
    with DeviceLock("ssh://pi@10.0.0.7:22", tmp_path, timeout_s=0.1) as again:
        assert again.held
    assert lock_file(tmp_path, "a/b c").name.startswith("a_b_c-")


def test_lock_works_across_processes_and_dies_with_its_holder(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from edgeq.devicelock import DeviceLock
                held = DeviceLock("adb://localhost:5037/SERIAL1", {str(tmp_path)!r},
                                  owner={{"run_id": "other-process"}}).acquire()
                print("held", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = DeviceLock("adb://localhost:5037/SERIAL1", tmp_path, timeout_s=0.5)
        with pytest.raises(DeviceBusy, match="other-process"):
            lock.acquire()
        holder.kill()  # the holder dies without releasing: the kernel frees the lock
        holder.wait(10)
        lock = DeviceLock("adb://localhost:5037/SERIAL1", tmp_path, timeout_s=5)
        t0 = time.monotonic()
        with lock:
            assert time.monotonic() - t0 < 1
    finally:
        holder.kill()
        holder.wait(10)
