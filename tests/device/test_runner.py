"""The device runner as a program: JSON out for every outcome, on old and new stacks."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from edgeq import evaldata, paths
from edgeq_device import edgeq_runner as runner
from tests.support.device_venv import ensure_venv, find_python

RUNNER = str(paths.runner_path())
QUICK = ["--runs", "5", "--min-s", "0", "--warmup-runs", "1", "--warmup-min-s", "0"]


def _run(python: str, *args: str) -> tuple[int, dict, str]:
    proc = subprocess.run(
        [python, RUNNER, *map(str, args)], capture_output=True, text=True, timeout=300
    )
    return proc.returncode, json.loads(proc.stdout), proc.stderr


@pytest.fixture(scope="module")
def eval_npz(data_dir):
    return evaldata.stage_dataset("mnist", data_dir)


def test_success_document(artifacts, eval_npz):
    code, doc, _ = _run(
        sys.executable, artifacts[0] / "model_int8.tflite", "--data", eval_npz, *QUICK
    )
    assert code == 0 and doc["ok"] is True and doc["schema"] == "edgeq.run/1"
    assert doc["latency_ms"]["invoke"]["count"] >= 5
    assert doc["model"]["inputs"][0]["dtype"] == "int8"
    assert doc["accuracy"]["samples"] == 1000 and doc["memory"]["peak_rss_kb"] > 0


def test_out_file_instead_of_stdout(artifacts, tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, RUNNER, artifacts[0] / "model_float32.tflite", "--out", out, *QUICK],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and proc.stdout == ""
    assert json.loads(out.read_text())["ok"] is True


@pytest.mark.parametrize(
    "args, code, kind",
    [
        (["--runs", "0", "m.tflite"], 2, "Usage"),
        ([], 2, "Usage"),
        (["/nonexistent.tflite"], 3, "BadModel"),
    ],
)
def test_errors_are_json(args, code, kind):
    rc, doc, err = _run(sys.executable, *args)
    assert rc == code and doc["ok"] is False and doc["error"]["type"] == kind
    assert err.startswith("edgeq_runner:")


def test_not_a_model(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"not a flatbuffer" * 10)
    rc, doc, _ = _run(sys.executable, bad, *QUICK)
    assert rc == 3 and doc["error"]["type"] == "BadModel"


def test_bad_data(artifacts, tmp_path):
    f = tmp_path / "d.npz"
    np.savez(f, images=np.zeros((2, 28, 28), np.uint8))
    rc, doc, _ = _run(sys.executable, artifacts[0] / "model_int8.tflite", "--data", f, *QUICK)
    msg = doc["error"]["message"]  # a key other than x names an input (multi-input data)
    assert rc == 4 and "'images' [28, 28] is no input of the model" in msg and "image" in msg
    np.savez(f, y=np.zeros(2, np.uint8))
    rc, doc, _ = _run(sys.executable, artifacts[0] / "model_int8.tflite", "--data", f, *QUICK)
    assert rc == 4 and "must hold samples under 'x'" in doc["error"]["message"]
    np.savez(f, x=np.zeros((2, 28, 28), np.int16), y=np.zeros(2, np.uint8))
    rc, doc, _ = _run(sys.executable, artifacts[0] / "model_int8.tflite", "--data", f, *QUICK)
    assert rc == 4 and "must be uint8, float or int8" in doc["error"]["message"]
    np.savez(f, x=np.zeros((2, 32, 32), np.uint8), y=np.zeros(2, np.uint8))
    rc, doc, _ = _run(sys.executable, artifacts[0] / "model_int8.tflite", "--data", f, *QUICK)
    msg = doc["error"]["message"]
    assert rc == 4 and "[32, 32]" in msg and "[N, 28, 28, 1]" in msg, msg
    np.savez(f, x=np.zeros((2, 28, 28), np.uint8), y=np.array([0, 10]))
    rc, doc, _ = _run(sys.executable, artifacts[0] / "model_int8.tflite", "--data", f, *QUICK)
    assert rc == 4 and "the model has 10 classes (0..9)" in doc["error"]["message"]


def test_probe_works_without_numpy():
    bare = ensure_venv((), "bare-venv")
    rc, doc, _ = _run(str(bare), "--probe")
    env = doc["environment"]
    assert rc == 0 and env["numpy"] is None and env["runtime"] is None
    assert "no TFLite interpreter" in env["runtime_error"]


def test_missing_numpy_is_explained(artifacts):
    bare = ensure_venv((), "bare-venv")
    rc, doc, _ = _run(str(bare), artifacts[0] / "model_int8.tflite")
    assert rc == 5 and doc["error"]["type"] == "NoNumpy"
    assert "pip install numpy" in doc["error"]["hint"]


@pytest.mark.skipif(
    not find_python("3.8"), reason="no python3.8 here (pyenv install 3.8, or apt) to run this check"
)
def test_python38_numpy1_tflite_runtime(artifacts, eval_npz):
    """An old Pi: Python 3.8, numpy 1.24, tflite-runtime 2.14 — same answers as the host."""
    import os

    py38 = ensure_venv(
        ("tflite-runtime==2.14.0", "numpy<1.25"), "py38-venv", python=find_python("3.8")
    )
    rc, doc, err = _run(str(py38), artifacts[0] / "model_int8.tflite", "--data", eval_npz, *QUICK)
    assert rc == 0, err
    env = doc["environment"]
    assert env["python"].startswith("3.8.") and env["numpy"].startswith("1.24")
    assert env["runtime"] == "tflite-runtime"
    _, host, _ = _run(
        sys.executable, artifacts[0] / "model_int8.tflite", "--data", eval_npz, *QUICK
    )
    assert abs(doc["accuracy"]["top1"] - host["accuracy"]["top1"]) <= 0.001 + 1e-12
    assert os.path.exists(py38)


# --------------------------------------------------------------------------- pieces

X86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse sse2 avx\n"
PI4 = (
    "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd\nCPU part\t: 0xd08\n\n"
    "Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
)


def test_emulation_detection(monkeypatch):
    monkeypatch.delenv("EDGEQ_EMULATED", raising=False)
    assert runner.detect_emulation("aarch64", X86)[0] is True
    assert runner.detect_emulation("x86_64", X86)[0] is False
    assert runner.detect_emulation("aarch64", PI4)[0] is False
    assert runner.detect_emulation("aarch64", PI4.replace("1.4", "1.4 (QEMU)"))[0] is True
    monkeypatch.setenv("EDGEQ_EMULATED", "1")
    assert runner.detect_emulation("x86_64", X86) == (True, "EDGEQ_EMULATED=1")
    assert runner._cpu_model(PI4) == "Raspberry Pi 4 Model B Rev 1.4"


def test_latency_stats_match_numpy():
    ns = np.random.RandomState(0).lognormal(11, 0.3, 1000)
    st = runner.latency_stats(ns.astype(np.int64))
    ms = ns.astype(np.int64) / 1e6
    assert st["count"] == 1000
    for k, q in (("p50", 50), ("p90", 90), ("p99", 99)):
        assert st[k] == pytest.approx(np.percentile(ms, q))
    assert st["min"] == pytest.approx(ms.min()) and st["std"] == pytest.approx(ms.std(ddof=1))


def test_loop_is_bounded_by_count_and_time():
    calls = []
    n, _ = runner._loop(lambda: calls.append(1), runs=7, min_s=0.0, max_s=10)
    assert n == 7 == len(calls)
    n, elapsed = runner._loop(lambda: None, runs=1, min_s=0.05, max_s=10)
    assert n > 1 and elapsed >= 0.05e9
    n, elapsed = runner._loop(
        lambda: __import__("time").sleep(0.02), runs=10**6, min_s=0, max_s=0.1
    )
    assert n < 10 and elapsed >= 0.1e9


def _int8_interpreter(artifacts):
    """The int8 model in this host's interpreter, allocated, with an all-zero input."""
    cls, _, _ = runner.find_interpreter()
    it = runner.make_interpreter(cls, str(artifacts[0] / "model_int8.tflite"))
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    return it, runner.quantize_input(np.zeros(inp["shape"], np.float32), inp)


def test_benchmark_counts(artifacts):
    it, sample = _int8_interpreter(artifacts)
    args = argparse.Namespace(warmup_runs=3, warmup_min_s=0, runs=25, min_s=0, max_s=10)
    b = runner.benchmark(it, sample, args)
    assert b["warmup"]["count"] == 3
    assert b["latency_ms"]["invoke"]["count"] == b["latency_ms"]["end_to_end"]["count"] == 25
    assert "steady_p50" not in b["latency_ms"]["invoke"]  # 25 invokes: no two windows


def test_a_real_run_reports_its_steadiest_stretch(artifacts):
    it, sample = _int8_interpreter(artifacts)
    args = argparse.Namespace(warmup_runs=3, warmup_min_s=0, runs=400, min_s=0, max_s=10)
    inv = runner.benchmark(it, sample, args)["latency_ms"]["invoke"]
    assert inv["count"] == 400 and inv["steady_window"] == 50  # 8 windows of 50 invokes
    assert inv["min"] <= inv["steady_p50"] <= inv["p50"] <= inv["max"]
    assert inv["steady_p50"] <= inv["steady_p90"] <= inv["max"]


def test_timed_runs_live_in_bounded_arrays(artifacts):
    it, sample = _int8_interpreter(artifacts)
    args = argparse.Namespace(warmup_runs=0, warmup_min_s=0, runs=1, min_s=10, max_s=60)
    bufs = runner.sample_buffers(200)
    phases = []
    b = runner.benchmark(it, sample, args, bufs, phases.append)
    assert b["capped"] is True and b["latency_ms"]["invoke"]["count"] == 200  # not 10 s
    assert phases == ["before_warmup", "after_warmup", "after_steady_state"]
    assert len(b["samples_ms"]) == 200 and b["samples_every"] == 1


def test_the_models_footprint_does_not_grow_with_min_s(artifacts):
    model = artifacts[0] / "model_int8.tflite"
    feet = []
    for min_s in ("0", "3"):
        code, doc, err = _run(sys.executable, model, "--runs", "20", "--min-s", min_s,
                              "--warmup-runs", "0", "--warmup-min-s", "0")  # fmt: skip
        assert code == 0, err
        feet.append(doc["memory"]["model_footprint_kb"])
        counts = doc["latency_ms"]["invoke"]["count"]
    assert counts > 2000  # the 3-second run timed thousands of invokes...
    assert abs(feet[1] - feet[0]) <= 256, feet  # ...in the same memory
    mem = doc["memory"]
    assert mem["rss_after_imports_kb"] <= mem["rss_after_allocate_kb"] <= mem["peak_rss_kb"]
    assert len(doc["latency_samples_ms"]["invoke"]) <= runner.DOC_SAMPLES


def test_the_runner_samples_a_realistic_sysfs(artifacts, tmp_path):
    import os

    from tests.support.sysfs import make_sysfs

    root = make_sysfs(tmp_path / "sys-root", temps=(51.5,))
    proc = subprocess.run(
        [sys.executable, RUNNER, str(artifacts[0] / "model_int8.tflite"), *QUICK],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "EDGEQ_SYSFS_ROOT": str(root)},
    )  # fmt: skip
    doc = json.loads(proc.stdout)
    phases = [s["phase"] for s in doc["sampling"]]
    assert phases == ["before_warmup", "after_warmup", "after_steady_state"]
    first = doc["sampling"][0]
    assert first["temps_c"] == {"thermal_zone0": 51.5} and first["throttled"] == 0
    assert set(first["freqs_mhz"]) <= {"cpu0", "cpu1"} and first["governor"] == "ondemand"
