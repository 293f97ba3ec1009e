"""Shared fixtures. Data comes from ../shared/data (or EDGEQ_DATA_DIR); never the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    env = os.environ.get("EDGEQ_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "data", REPO / "tests" / "fixtures"]
    for c in candidates:
        if (c / "mnist.npz").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture()
def cli():
    """Invoke the edgeq CLI in-process; returns typer's Result (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from edgeq.cli.main import app

    runner = CliRunner()

    def invoke(*args: str, **kw):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kw)

    return invoke
