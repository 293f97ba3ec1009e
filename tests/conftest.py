"""Shared fixtures. Data comes from tests/fixtures (small subsets in the repo); full-size data
for the slow tier from EDGEQ_DATA_DIR or ../shared/data. Never the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


AMBIENT_DATA_DIR = os.environ.get("EDGEQ_DATA_DIR")  # read before tests hide it


def full_data_dir() -> Path | None:
    """Where the full mnist.npz lives, if anywhere on this machine."""
    env = AMBIENT_DATA_DIR
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


@pytest.fixture(scope="session")
def foreign():
    """Models nobody here wrote (tests/support/foreign_models.py), built once and cached:
    {name: ForeignModel} for float_rgb, uint8_gray, two_inputs, dynamic_batch, dynamic_seq,
    regression and mixed_dtypes."""
    from tests.support.foreign_models import build_all

    return build_all()


# --------------------------------------------------------------------------- devices


@pytest.fixture(scope="session")
def pi_python() -> str:
    """The "Pi's" own python: tflite-runtime 2.14 + numpy<2 in a separate venv."""
    from tests.support.device_venv import PI_PACKAGES, ensure_venv

    return str(ensure_venv(PI_PACKAGES, "pi-venv"))


@pytest.fixture(scope="session")
def sshd_factory(tmp_path_factory):
    """Start real OpenSSH servers on 127.0.0.1; all stopped at the end of the session."""
    from tests.support import sshd

    why = sshd.available()
    if why:
        pytest.skip(why)
    servers = []

    def start(**kw):
        srv = sshd.SshServer(tmp_path_factory.mktemp("sshd"), **kw).start()
        servers.append(srv)
        return srv

    yield start
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def pi_server(sshd_factory):
    """The default "Raspberry Pi": a real sshd on a free port."""
    return sshd_factory()


@pytest.fixture()
def pi_workdir(tmp_path) -> Path:
    """A fresh workdir base on the "Pi" for one test (to check nothing is left behind)."""
    d = tmp_path / "pi-base"
    d.mkdir()
    return d


def write_config(path: Path, targets: dict[str, dict], budget: dict | None = None) -> Path:
    """Write an edgeq.toml with the given [targets.NAME] tables and [budget]."""
    import json

    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {val(x)}" for k, x in v.items()) + "}"
        return json.dumps(str(v))

    lines = []
    for name, values in targets.items():
        lines.append(f"[targets.{json.dumps(name)}]")
        lines += [f"{k} = {val(v)}" for k, v in values.items()]
        lines.append("")
    if budget:
        lines.append("[budget]")
        lines += [f"{k} = {val(v)}" for k, v in budget.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def pi_config(tmp_path, pi_server, pi_python, pi_workdir):
    """edgeq.toml with target `pi` = the test sshd running the device venv."""
    return write_config(
        tmp_path / "edgeq.toml",
        {"pi": pi_server.target_values(python=pi_python, workdir=str(pi_workdir))},
    )


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A private EDGEQ_CACHE_DIR for one test."""
    d = tmp_path / "edgeq-cache"
    monkeypatch.setenv("EDGEQ_CACHE_DIR", str(d))
    return d


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """Keep the suite's host-side cache out of the developer's ~/.cache."""
    import os

    old = os.environ.get("EDGEQ_CACHE_DIR")
    os.environ["EDGEQ_CACHE_DIR"] = str(tmp_path_factory.mktemp("edgeq-cache"))
    yield
    if old is None:
        os.environ.pop("EDGEQ_CACHE_DIR", None)
    else:
        os.environ["EDGEQ_CACHE_DIR"] = old
