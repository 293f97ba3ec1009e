"""The slow tier: the full pipeline at full size (60k training images, the 10k test split),
as `make demo` runs it. About 3 minutes on 2 cores. `make test-slow`; CI runs it."""

from __future__ import annotations

import json

import pytest

from tests.support.repo import full_data_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def full_data():
    d = full_data_dir()
    if d is None:
        pytest.skip("full MNIST not found: set EDGEQ_DATA_DIR to a folder with mnist.npz")
    return d


def test_deploy_from_nothing_passes_the_books_budget(cli, full_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = cli("deploy", "--target", "local", "--data", full_data, "--json")
    assert res.exit_code == 0, res.stdout[-2000:] + res.stderr[-2000:]
    doc = json.loads(res.stdout)
    checks = {c["metric"]: c for c in doc["verdict"]["checks"]}
    assert doc["run"]["accuracy"]["samples"] == 10_000
    assert checks["model_size"]["measured"] <= 50
    assert checks["accuracy"]["measured"] >= 0.985
    assert checks["accuracy_drop"]["measured"] <= 0.3
    # a second deploy reuses the trained artifact and sends nothing
    again = json.loads(cli("deploy", "--target", "local", "--data", full_data, "--json").stdout)
    assert again["bytes_sent"] == 0 and again["artifact"]["sha256"] == doc["artifact"]["sha256"]
