"""What comes back: huge or non-UTF-8 output, a result file that is not JSON or lacks the
required fields, a model that changed while the deploy ran, a model the device cannot
load, a truncated model. Each is caught, named in one line, and leaves nothing behind.

The device's python is replaced by a script that runs the real runner and then spoils
one thing, the way a flaky device or a bad interpreter build would."""

from __future__ import annotations

import time

import pytest

from edgeq import config
from edgeq.targets import make_target
from edgeq.targets._process import MAX_OUTPUT
from tests.faults.conftest import EASY, cached, error_line, leftovers, script

SPOIL = (
    '"{py}" "$@"; rc=$?\n'
    'while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done\n'
    "{spoil}\n"
    "exit $rc\n"
)


def _spoiling_python(tmp_path, pi_python, spoil: str, name: str = "spoiling-python") -> str:
    return script(tmp_path / name, SPOIL.format(py=pi_python, spoil=spoil))


def test_huge_and_non_utf8_output_is_bounded(pi_deploy, tmp_path, pi_python, pi_workdir):
    # 12 MB of random bytes on each stream before the real runner runs: kept to the last
    # 4 MB, decoded with replacement characters, and the result still comes from its file
    noisy = script(
        tmp_path / "noisy-python",
        "head -c 12000000 /dev/urandom; head -c 12000000 /dev/urandom >&2\n"
        f'exec "{pi_python}" "$@"\n',
    )
    t0 = time.monotonic()
    res = pi_deploy("--json", python=noisy, budget=EASY)
    assert res.exit_code == 0, res.stderr[-2000:]
    assert time.monotonic() - t0 < 120
    assert leftovers(pi_workdir) == []


@pytest.mark.parametrize("transport", ["ssh", "local"])
def test_output_is_kept_to_its_last_4_mb(transport, pi_server, pi_workdir):
    values = pi_server.target_values() if transport == "ssh" else {"transport": "local"}
    target = make_target(config.validate_target("dev", values, "test"))
    with target as t:
        res = t.run("head -c 10000000 /dev/urandom; echo; echo THE-END; echo oops >&2")
    out = res.stdout.encode("utf-8", "surrogateescape")
    assert res.stdout.endswith("\nTHE-END\n") and res.stderr == "oops\n"
    assert len(out) < 8 * MAX_OUTPUT  # (replacement characters take 3 bytes each)
    assert len(res.stdout) <= MAX_OUTPUT
    assert res.dropped[0] >= 10_000_000 - MAX_OUTPUT and res.dropped[1] == 0


def test_huge_non_utf8_output_of_a_failing_runner_gives_one_short_line(
    pi_deploy, tmp_path, pi_workdir
):
    crash = script(
        tmp_path / "garbage-python",
        "head -c 8000000 /dev/urandom >&2; printf '\\377\\376 fatal: bad \\377 bytes\\n' >&2; "
        "exit 1\n",
    )
    res = pi_deploy(python=crash)
    assert res.exit_code == 3
    line = error_line(res.stderr)  # (the broken python is found by the probe already)
    assert "(exit 1)" in line and "fatal: bad" in line
    assert "\ufffd" in line  # the bytes that were not UTF-8, replaced
    assert len(line) < 2000
    assert leftovers(pi_workdir) == []


def test_result_file_that_is_not_json(pi_deploy, tmp_path, pi_python, pi_workdir):
    bad = _spoiling_python(tmp_path, pi_python, "printf 'Segmentation fault\\377\\n' > \"$out\"")
    res = pi_deploy(python=bad)
    assert res.exit_code == 3
    assert "not valid JSON" in error_line(res.stderr)
    assert leftovers(pi_workdir) == []


def test_result_that_claims_ok_but_lacks_required_fields(
    pi_deploy, tmp_path, pi_python, pi_workdir
):
    bad = _spoiling_python(
        tmp_path, pi_python, 'printf \'%s\' \'{"schema": "edgeq.run/1", "ok": true}\' > "$out"'
    )
    res = pi_deploy(python=bad)
    assert res.exit_code == 3
    assert "invalid result: model.sha256 must be a string" in error_line(res.stderr)
    assert not list((tmp_path / "results").glob("*.json"))  # nothing saved as a result
    assert leftovers(pi_workdir) == []


def test_model_that_changes_while_the_deploy_runs(pi_deploy, tmp_path, artifacts, pi_python):
    model = tmp_path / "model.tflite"
    model.write_bytes((artifacts[0] / "model_int8.tflite").read_bytes())
    # the "device" is this machine: its python rewrites the user's file mid-deploy, as a
    # training job saving a new checkpoint over it would
    rewriting = script(
        tmp_path / "rewriting-python",
        f"printf 'new checkpoint' >> '{model}'\nexec \"{pi_python}\" \"$@\"\n",
    )
    res = pi_deploy(model=model, python=rewriting)
    assert res.exit_code == 2
    line = error_line(res.stderr)
    assert f"{model} changed while the deploy ran" in line and "not saved" in line
    assert not list((tmp_path / "results").glob("*.json"))


def test_a_model_the_device_cannot_load_is_named_and_not_cached(pi_deploy, artifacts, pi_workdir):
    # The Pi's tflite-runtime 2.14 predates the FULLY_CONNECTED version the dynamic-range
    # model uses (the host's newer interpreter loads it fine).
    model = artifacts[0] / "model_dynamic.tflite"
    res = pi_deploy(model=model)
    assert res.exit_code == 2  # found before the push (edgeq.compat): a model error
    line = error_line(res.stderr)
    assert f"{model} needs operator FULLY_CONNECTED v12" in line
    assert "edgeq-cache" not in line  # the user's file is named, not the device's copy
    assert not cached(pi_workdir, ".tflite")
    assert leftovers(pi_workdir) == []


def test_a_truncated_model_is_refused_on_the_host(pi_deploy, artifacts, tmp_path, pi_workdir):
    good = (artifacts[0] / "model_int8.tflite").read_bytes()
    cut = tmp_path / "half.tflite"
    cut.write_bytes(good[: len(good) // 2])
    res = pi_deploy(model=cut)
    assert res.exit_code == 2
    line = error_line(res.stderr)
    assert line.startswith(f"edgeq: error: {cut}: not a loadable TFLite model")
    assert "truncated or damaged" in line
    assert list(pi_workdir.iterdir()) == []  # nothing was sent, not even the runner
