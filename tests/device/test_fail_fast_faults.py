"""Fail fast: the device's python, numpy and interpreter are checked before the model and
the data are sent; one error lists everything missing and points at setup_device.sh."""

from __future__ import annotations

from tests.support.device_venv import ensure_venv
from tests.support.faults import cached, error_line, leftovers


def test_a_device_without_numpy_hears_everything_missing_before_any_data(pi_deploy, pi_workdir):
    bare = ensure_venv((), "bare-venv")  # a python with neither numpy nor an interpreter
    res = pi_deploy(python=str(bare))
    assert res.exit_code == 3
    line = error_line(res.stderr)
    assert "lacks numpy and interpreter" in line
    assert "pip install numpy" in line and "pip install ai-edge-litert" in line
    assert "device_scripts/setup_device.sh" in line
    assert "nothing was sent but the runner" in line
    # only the runner travelled: no model, no evaluation data in the device cache
    assert cached(pi_workdir, ".py") and not cached(pi_workdir, ".tflite")
    assert not cached(pi_workdir, ".npz")
    assert leftovers(pi_workdir) == []


def test_a_device_without_python_points_at_the_setup_script(pi_deploy, pi_workdir):
    res = pi_deploy(python="/nonexistent/python3")
    line = error_line(res.stderr)
    assert res.exit_code == 3 and "not found on the device" in line
    assert "device_scripts/setup_device.sh" in line
    assert not cached(pi_workdir, ".tflite")
