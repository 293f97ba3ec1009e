"""Defects found trying edgeq as a new user would (docs/fault-matrix.md, the fast tier):
budget values that guaranteed a FAIL, help text that lost its bracketed words, a --data
file that is not an npz, the local target's cache that was never pruned."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from edgeq import config, data
from edgeq.budget import Budget
from edgeq.errors import ConfigError, DataError
from edgeq.targets.base import owner_line

# --------------------------------------------------------------------------- budget


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("min_accuracy = 98", "key 'min_accuracy' must be in 0..1"),
        ("min_accuracy = -0.1", "key 'min_accuracy' must be in 0..1"),
        ('min_accuracy = "98"', "key 'min_accuracy' must be a number"),
        ("max_model_kb = nan", "key 'max_model_kb' must be a finite number, got nan"),
        ("max_latency_ms = inf", "key 'max_latency_ms' must be a finite number, got inf"),
        ("max_accuracy_drop_pp = -inf", "key 'max_accuracy_drop_pp' must be a finite number"),
        ('min_accuracy = "nan%"', "key 'min_accuracy' must be a finite number"),
        ('min_accuracy = "150%"', "key 'min_accuracy' must be in 0..1"),
    ],
)
def test_budget_values_that_guarantee_a_fail_are_refused(tmp_path, line, fragment):
    b = tmp_path / "budget.toml"
    b.write_text(f"[budget]\n{line}\n")
    with pytest.raises(ConfigError) as exc:
        Budget.load(b)
    assert fragment in exc.value.message and str(b) in exc.value.message
    if "min_accuracy" in line and "finite" not in fragment:
        assert 'write it as one: "98%"' in exc.value.message  # the way out is named


def test_budget_accepts_an_explicit_percent(tmp_path):
    for text, want in (('"98%"', 0.98), ('"99.5 %"', 0.995), ("0.97", 0.97), ("1", 1)):
        b = tmp_path / "budget.toml"
        b.write_text(f"min_accuracy = {text}\n")
        assert Budget.load(b).min_accuracy == pytest.approx(want)
    cfg = tmp_path / "edgeq.toml"
    cfg.write_text('[budget]\nmin_accuracy = "90%"\n')
    assert config.load(cfg).budget["min_accuracy"] == pytest.approx(0.9)


def test_a_bad_budget_is_exit_2_before_any_work(cli, tmp_path):
    b = tmp_path / "budget.toml"
    b.write_text("max_model_kb = nan\n")
    t0 = time.monotonic()
    res = cli("deploy", "--budget", b, "--model", tmp_path / "none.tflite")
    assert res.exit_code == 2 and time.monotonic() - t0 < 10
    assert res.stderr.strip() == (
        f"edgeq: error: {b} [budget]: key 'max_model_kb' must be a finite number, got nan"
    )


# --------------------------------------------------------------------------- help text


def test_help_and_error_text_keep_bracketed_words(cli, tmp_path):
    res = cli("deploy", "--help")
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())
    assert "per [model]" in text and "the [budget] table of the config" in text
    cfg = tmp_path / "edgeq.toml"
    cfg.write_text('[targets.pi]\ntransport = "ssh"\n')
    res = cli("targets", "--config", cfg)
    assert res.exit_code == 2
    assert res.stderr.strip() == (
        f"edgeq: error: {cfg} [targets.pi]: missing required key 'host' (device hostname or "
        f"IP address)"
    )


# --------------------------------------------------------------------------- --data


def _npy_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    return buf.getvalue()


def _npz_with_objects(path):
    arrays = {k: np.zeros(1) for k in ("y_train", "x_test", "y_test")}
    np.savez(path, x_train=np.array([object()]), **arrays)


def _npz_zip_without_arrays(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "not arrays")


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda p: p.write_text("x,y\n1,2\n"), "not a .npz archive"),
        (lambda p: p.write_bytes(pickle.dumps({"x_train": [1, 2]})), "not a .npz archive"),
        (lambda p: p.write_bytes(_npy_bytes()), "a single .npy array"),
        (lambda p: p.write_bytes(b"PK\x03\x04" + b"\0" * 40), "not a readable .npz archive"),
        (_npz_zip_without_arrays, "missing key 'x_train'"),
        (_npz_with_objects, "an array holds Python objects"),
    ],
)
def test_data_that_is_not_an_npz_says_what_one_holds(tmp_path, make, fragment):
    f = tmp_path / "mnist.npz"
    make(f)
    with pytest.raises(DataError) as exc:
        data.load("mnist", f)
    msg = exc.value.message
    assert fragment in msg
    assert "holding x_train and x_test (uint8 images [N, H, W]) and y_train and y_test" in msg
    assert "allow_pickle" not in msg and "pickle" not in msg.lower()


def test_data_error_on_the_command_line_is_one_line(cli, tmp_path):
    f = tmp_path / "digits.csv"
    f.write_text("1,2,3\n")
    res = cli("train", "--data", f, "--epochs", "1", "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "not a .npz archive" in res.stderr


# --------------------------------------------------------------------------- cache prune


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture()
def local_cache(tmp_path):
    """A local target's workdir base with cache files of known age and size, an old
    unfinished upload, a run folder of a dead edgeq and one of this live process."""
    base = tmp_path / "edgeq-local"
    cache = base / "edgeq-cache"
    cache.mkdir(parents=True)
    now = time.time()
    files = {"old.tflite": (300_000, 60), "mid.npz": (2_000_000, 10), "new.py": (30_000, 0)}
    for name, (size, days) in files.items():
        (cache / name).write_bytes(b"x" * size)
        os.utime(cache / name, (now - days * 86400, now - days * 86400))
    part = cache / "new.py.part123"
    part.write_bytes(b"x" * 100)
    os.utime(part, (now - 7200, now - 7200))
    for name, pid in (("run.dead", _dead_pid()), ("run.live", os.getpid())):
        fields = owner_line().split()  # this host, this boot: edgeq <host> <boot> <pid> <start>
        fields[3] = str(pid)
        (base / name).mkdir()
        (base / name / ".owner").write_text(" ".join(fields) + "\n")
    cfg = tmp_path / "edgeq.toml"
    cfg.write_text(f'[targets.here]\ntransport = "local"\nworkdir = "{base}"\n')
    return base, cfg


def test_cache_prune_dry_run_lists_and_keeps_everything(cli, local_cache):
    base, cfg = local_cache
    before = sorted(p.name for p in base.rglob("*"))
    res = cli("cache", "prune", "--config", cfg, "--older-than", "30", "--dry-run", "--json")
    assert res.exit_code == 0, res.stderr
    (report,) = [r for r in json.loads(res.stdout)["folders"] if r["base"] == str(base)]
    removed = {os.path.basename(r["path"]): r["why"] for r in report["removed"]}
    assert removed == {
        "run.dead": "run folder of an edgeq process that is gone",
        "old.tflite": "unused for over 30 days",
        "new.py.part123": "unfinished upload",
    }
    assert sorted(p.name for p in base.rglob("*")) == before


def test_cache_prune_by_age_and_by_size(cli, local_cache):
    base, cfg = local_cache
    cache = base / "edgeq-cache"
    res = cli("cache", "prune", "--config", cfg, "--older-than", "30")
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in cache.iterdir()) == ["mid.npz", "new.py"]
    assert sorted(p.name for p in base.glob("run.*")) == ["run.live"]  # the live one stays
    res = cli("cache", "prune", "--config", cfg, "--max-mb", "1", "--json")
    assert res.exit_code == 0
    assert sorted(p.name for p in cache.iterdir()) == ["new.py"]  # least recently used went
    bad = cli("cache", "prune", "--max-mb", "-1")
    assert bad.exit_code == 2 and "--max-mb must be a number >= 0" in bad.stderr
