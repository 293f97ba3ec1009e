"""Bad input around the device path (issue 21, items 6 and 8-11): a very long target name,
an unusable lock folder, a history on a read-only filesystem, a damaged or foreign history,
a lab URL and a config file Python's parsers choke on, a workdir holding a newline, a lab
run killed with -9. Each ends in one line and its documented exit code, before any work."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from edgeq import config
from edgeq.lab.history import History
from edgeq.results import STEM_MAX, file_stem
from edgeq.targets import make_target
from tests.support import report_history as rh
from tests.support.config import write_config
from tests.support.faults import EASY, error_line
from tests.support.lab import write_inventory


def test_a_very_long_target_name_is_saved_under_a_bounded_name(
    deploy_cli, tmp_path, pi_python, artifacts
):
    name = "pi-" + "x" * 297
    cfg = write_config(
        tmp_path / "edgeq.toml", {name: {"transport": "local", "python": pi_python}}, EASY
    )
    res = deploy_cli(name, cfg, artifacts[0] / "model_int8.tflite")
    assert res.exit_code == 0, res.stderr
    (saved,) = (tmp_path / "results").glob("*.json")
    assert len(saved.name) < 120 and file_stem(name) in saved.name
    assert json.loads(saved.read_text())["target"]["name"] == name  # the name itself kept
    assert file_stem(name) == file_stem(name) and len(file_stem(name)) == STEM_MAX
    assert file_stem(name) != file_stem(name + "y")  # shortened, still unique


@pytest.mark.parametrize("kind", ["shared", "not-a-folder"])
def test_an_unusable_lock_folder_stops_the_lab_before_any_work(
    kind, cli, tmp_path, lab_sections, artifacts
):
    locks = tmp_path / "locks"
    if kind == "shared":
        locks.mkdir(mode=0o777)
        locks.chmod(0o777)
    else:
        locks.write_text("a file, not a folder\n")
    lab_sections["lab"]["models"] = [str(artifacts[0] / "model_int8.tflite")]
    inv = write_inventory(tmp_path / "lab.toml", lab_sections, {"host": {"transport": "local"}})
    res = cli("lab", "run", "--inventory", inv)
    assert res.exit_code == 2, res.stderr
    line = error_line(res.stderr)
    assert str(locks) in line and "lock_dir" in line
    assert not (tmp_path / "history.sqlite").exists()  # no run, no rows


def test_lab_report_reads_a_history_on_a_read_only_filesystem(cli, tmp_path, tmpfs):
    ro = tmpfs(tmp_path / "ro", 4096)
    rh.fill(ro / "history.sqlite", nights=2)
    done = subprocess.run(["mount", "-o", "remount,ro", str(ro)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    res = cli("lab", "report", "--db", ro / "history.sqlite", "-f", "md", "-o", tmp_path / "r")
    assert res.exit_code == 0, res.stderr
    assert "run-02" in (tmp_path / "r").read_text()


def test_a_damaged_history_is_one_line_exit_2(cli, tmp_path):
    db = rh.fill(tmp_path / "history.sqlite", nights=2)
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    data[2 * page : 4 * page] = b"\xa5" * (2 * page)  # two pages of garbage
    db.write_bytes(bytes(data))
    res = cli("lab", "report", "--db", db, "-f", "md", "-o", tmp_path / "r")
    assert res.exit_code == 2, res.stderr
    line = error_line(res.stderr)
    assert "history" in line and "--db" in line and "internal error" not in res.stderr


def test_a_foreign_sqlite_file_is_never_extended(cli, tmp_path, lab_sections):
    other = tmp_path / "app.sqlite"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE users (name TEXT)")
    before = other.read_bytes()
    res = cli("lab", "report", "--db", other, "-f", "md", "-o", tmp_path / "r")
    assert res.exit_code == 2, res.stderr
    assert "holds another application's tables: users" in error_line(res.stderr)
    assert other.read_bytes() == before


def test_bad_urls_and_bad_bytes_are_one_line_exit_2(cli, tmp_path):
    res = cli("lab", "run", "--inventory", "labgrid://[::1")
    assert res.exit_code == 2, res.stderr
    assert "labgrid://[::1" in error_line(res.stderr)
    cfg = tmp_path / "edgeq.toml"
    cfg.write_bytes(b'[targets.pi]\ntransport = "ssh"\nhost = "caf\xe9"\n')
    res = cli("targets", "--config", cfg)
    assert res.exit_code == 2, res.stderr
    assert "is not UTF-8" in error_line(res.stderr)


def test_a_workdir_with_a_newline_is_refused(deploy_cli, tmp_path, pi_python, artifacts):
    cfg = write_config(
        tmp_path / "edgeq.toml",
        {"host": {"transport": "local", "python": pi_python, "workdir": str(tmp_path) + "/a\nb"}},
        EASY,
    )
    res = deploy_cli("host", cfg, artifacts[0] / "model_int8.tflite")
    assert res.exit_code == 2, res.stderr
    assert "holds a control character" in error_line(res.stderr)
    assert not (tmp_path / "a\nb").exists()


def test_a_run_killed_with_kill_9_is_marked_interrupted_by_the_next(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    alive = subprocess.Popen(["sleep", "60"])
    try:
        with History(tmp_path / "h.sqlite") as h:
            h.start_run("alive", "2026-01-01T00:00:00Z", settings={"pid": alive.pid})
            h.start_run("killed", "2026-01-01T00:00:01Z", settings={"pid": gone.pid})
            assert h.run("killed")["status"] == "running"
        with History(tmp_path / "h.sqlite") as h:
            h.start_run("next", "2026-01-02T00:00:00Z", settings={"pid": alive.pid})
            assert h.run("killed")["status"] == "interrupted"
            assert h.run("alive")["status"] == "running"  # a live process's run is left alone
    finally:
        alive.kill()
        alive.wait()


def test_cache_prune_target_cleans_an_ssh_devices_cache(cli, tmp_path, pi_config, pi_workdir):
    cache = pi_workdir / "edgeq-cache"
    cache.mkdir(mode=0o700)
    now = time.time()
    ages = {"old.tflite": 40 * 86400, "fresh.npz": 0, "x.tflite.part1": 7200, "y.part2": 60}
    for name, age in ages.items():
        (cache / name).write_bytes(b"m" * 100)
        os.utime(cache / name, (now - age, now - age))
    dry = cli("cache", "prune", "--target", "pi", "--config", pi_config, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr
    listed = sorted(Path(p).name for p in json.loads(dry.stdout)["removed"])
    assert listed == ["old.tflite", "x.tflite.part1"]
    assert sorted(p.name for p in cache.iterdir()) == sorted(ages)  # a dry run removes nothing
    res = cli("cache", "prune", "--target", "pi", "--config", pi_config, "--older-than", "30")
    assert res.exit_code == 0, res.stderr
    assert "removed 2 file(s)" in res.stdout
    assert sorted(p.name for p in cache.iterdir()) == ["fresh.npz", "y.part2"]
    # and any session removes unfinished uploads over an hour old by itself
    (cache / "z.part3").write_bytes(b"p")
    os.utime(cache / "z.part3", (now - 7200, now - 7200))
    with make_target(config.load(pi_config).target("pi")) as t:
        t.ensure_private()
    assert sorted(p.name for p in cache.iterdir()) == ["fresh.npz", "y.part2"]
