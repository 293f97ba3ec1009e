"""Shared fixtures. Data comes from tests/fixtures (small subsets in the repo); full-size data
for the slow tier from EDGEQ_DATA_DIR or ../shared/data. Never the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


def full_data_dir() -> Path | None:
    """Where the full mnist.npz lives, if anywhere on this machine."""
    env = os.environ.get("EDGEQ_DATA_DIR")
    for c in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if (c / "mnist.npz").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder with the small mnist.npz / fashion_mnist.npz fixtures."""
    return FIXTURES


@pytest.fixture(autouse=True)
def _no_ambient_data_dir(monkeypatch):
    """Tests choose their data explicitly; a developer's EDGEQ_DATA_DIR must not leak in."""
    monkeypatch.delenv("EDGEQ_DATA_DIR", raising=False)


@pytest.fixture()
def cli():
    """Invoke the edgeq CLI in-process; returns typer's Result (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from edgeq.cli.main import app

    runner = CliRunner()

    def invoke(*args: str, **kw):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kw)

    return invoke


@pytest.fixture(scope="session")
def trained(tmp_path_factory, data_dir):
    """A quickly trained book CNN (1 epoch on the 4,000-image fixture), shared by the suite."""
    from edgeq import train

    out = tmp_path_factory.mktemp("trained")
    return train.train(train.Recipe(epochs=1, batch_size=64), out, data_dir / "mnist.npz")


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory, trained, data_dir):
    """The trained model converted to every mode (200 calibration images)."""
    from edgeq import convert

    out = tmp_path_factory.mktemp("artifacts")
    manifest = convert.convert(trained.model_path, ["all"], out, 200, data_path=data_dir)
    return out, manifest
