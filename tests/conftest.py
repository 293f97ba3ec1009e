"""Shared fixtures (only fixtures and hooks: helpers live in tests/support/). Data comes from
tests/fixtures (small subsets in the repo); full-size data for the slow tier from
EDGEQ_DATA_DIR or ../shared/data. Never the network."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.config import FAST_FLAGS, GENEROUS, LIGHT_RUN, write_config
from tests.support.repo import FIXTURES, REPO

#: Fixtures that train, convert or start servers: the unit tier may not use them.
HEAVY_FIXTURES = {
    "trained",
    "artifacts",
    "pi_python",
    "sshd_factory",
    "pi_server",
    "pi_config",
    "pi_factory",
    "phones",
}


def pytest_configure(config):
    """The suite sends real Ctrl-C and hang-ups to edgeq, to itself and to the adb client.
    Started in the background (`make test &`, `nohup`, a script's `cmd &`), it inherits
    SIGINT (and under nohup SIGHUP) ignored, and so would every process it starts: those
    tests would fail for how the suite was launched, not for what they test. The suite's
    own process takes the usual handlers back; its children then start with the defaults."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


def pytest_collection_modifyitems(config, items):
    """Everything under tests/unit is in the unit tier (`make test-unit`, `-m unit`); a unit
    test that asks for a training or server fixture is a mistake, reported at collection."""
    unit_dir = FIXTURES.parent / "unit"
    for item in items:
        if unit_dir in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.unit)
        if item.get_closest_marker("unit"):
            heavy = HEAVY_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            if heavy:
                raise pytest.UsageError(
                    f"{item.nodeid} is a unit test but uses {', '.join(sorted(heavy))}; "
                    f"move it out of the unit tier"
                )


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


@pytest.fixture(autouse=True)
def _debug_does_not_leak():
    """`edgeq --debug` run in-process sets EDGEQ_TF_VERBOSE for the rest of the process (a
    real command is its own process): it must not make later tests' TensorFlow verbose."""
    before = os.environ.get("EDGEQ_TF_VERBOSE")
    yield
    if before is None:
        os.environ.pop("EDGEQ_TF_VERBOSE", None)
    else:
        os.environ["EDGEQ_TF_VERBOSE"] = before


@pytest.fixture(autouse=True)
def _no_stop_signal_left_over():
    """A test that interrupts edgeq in-process leaves `interrupts.STOP` set (a command clears
    it when it starts; the library, called directly, does not): each test starts without."""
    from edgeq import interrupts

    interrupts.STOP.clear()


@pytest.fixture()
def cli():
    """Invoke the edgeq CLI in-process; returns typer's Result (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from edgeq.cli.main import app

    runner = CliRunner()

    def invoke(*args: str, **kw):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kw)

    return invoke


@pytest.fixture()
def lab_sections(tmp_path, data_dir):
    """[lab] / [run] / [budget] for a fast test lab with a private lock folder and DB."""
    return {
        "lab": {
            "data": str(data_dir),
            "eval_limit": 200,
            "parallel": 5,
            "db": str(tmp_path / "history.sqlite"),
            "lock_dir": str(tmp_path / "locks"),
            "timeout_s": 120,
            "retries": 2,
            "backoff_s": 0.2,
            "lock_timeout_s": 120,
        },
        "run": LIGHT_RUN,
        "budget": GENEROUS,
    }


@pytest.fixture()
def deploy_cli(cli, data_dir, tmp_path):
    """`edgeq deploy --target T --config C --model M --data <fixtures> --results <tmp>` with
    light measuring flags (`fast=False` leaves them out); returns typer's Result."""

    def run(target, config, model, *extra, fast: bool = True, data=None):
        return cli(
            "deploy",
            "--target",
            target,
            "--config",
            config,
            "--model",
            model,
            "--data",
            data or data_dir,
            "--results",
            tmp_path / "results",
            *(FAST_FLAGS if fast else ()),
            *extra,
        )

    return run


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


@pytest.fixture()
def pi_config(tmp_path, pi_server, pi_python, pi_workdir):
    """edgeq.toml with target `pi` = the test sshd running the device venv."""
    return write_config(
        tmp_path / "edgeq.toml",
        {"pi": pi_server.target_values(python=pi_python, workdir=str(pi_workdir))},
    )


@pytest.fixture()
def pi_values(pi_server, pi_python, pi_workdir):
    """The [targets.pi] keys of the default test "Pi"; call with overrides."""

    def values(**over):
        v = pi_server.target_values(python=pi_python, workdir=str(pi_workdir))
        v.update(over)
        return v

    return values


@pytest.fixture()
def pi_deploy(deploy_cli, tmp_path, pi_values, artifacts):
    """`edgeq deploy --target pi` in-process with the target keys overridden."""

    def go(*extra, model=None, budget=None, fast=True, **over):
        cfg = write_config(tmp_path / "edgeq.toml", {"pi": pi_values(**over)}, budget)
        return deploy_cli("pi", cfg, model or artifacts[0] / "model_int8.tflite", *extra, fast=fast)

    return go


@pytest.fixture()
def tmpfs(tmp_path):
    """mount(path, size_kb): a small tmpfs at `path` (root only), unmounted afterwards."""
    mounts: list[Path] = []

    def mount(path: Path, size_kb: int) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.strip()}")
        mounts.append(path)
        return path

    yield mount
    for p in reversed(mounts):
        subprocess.run(["umount", "-l", str(p)], capture_output=True)


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A private EDGEQ_CACHE_DIR for one test."""
    d = tmp_path / "edgeq-cache"
    monkeypatch.setenv("EDGEQ_CACHE_DIR", str(d))
    return d


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """Keep the suite's host-side cache out of the developer's ~/.cache, and its device
    locks out of the host's shared lock folder (a deploy to `local` in another checkout's
    test run must not wait for this one)."""
    import os

    private = {
        "EDGEQ_CACHE_DIR": str(tmp_path_factory.mktemp("edgeq-cache")),
        "EDGEQ_LOCK_DIR": str(tmp_path_factory.mktemp("edgeq-locks")),
    }
    old = {k: os.environ.get(k) for k in private}
    os.environ.update(private)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
