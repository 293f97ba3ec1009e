"""edgeq.hostjudge: what the host judges after a runner measured."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edgeq import hostjudge

pytestmark = pytest.mark.unit


def _measured(reason: str = "benchmark_model measures latency only"):
    return SimpleNamespace(host_accuracy=reason, run={})


def test_host_accuracy_of_a_non_classifier_is_a_note_not_an_error(foreign, tmp_path):
    npz = tmp_path / "d.npz"
    spec = foreign["regression"]
    x = np.zeros((4, 1), np.float32)  # never read: no accuracy applies
    np.savez(npz, x=x)
    got = _measured()
    job = SimpleNamespace(artifact=spec.path, eval_npz=npz, settings=None)
    hostjudge.accuracy_on_host(got, job)
    assert got.run["accuracy"] is None
    assert got.run["accuracy_note"].startswith("not applicable")


def test_host_accuracy_without_labels_is_a_note_not_an_error(foreign, tmp_path):
    npz = tmp_path / "d.npz"
    np.savez(npz, x=np.zeros((4, 48, 48, 1), np.uint8))
    got = _measured()
    job = SimpleNamespace(artifact=foreign["uint8_gray"].path, eval_npz=npz, settings=None)
    hostjudge.accuracy_on_host(got, job)
    assert got.run["accuracy"] is None
    assert "no labels y" in got.run["accuracy_note"]
