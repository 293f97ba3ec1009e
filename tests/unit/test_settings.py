"""One definition of the run settings: the CLI options of deploy and bench, the lab's [run]
keys, the device runner's own argparse defaults and both runners' argv all agree with it."""

from __future__ import annotations

import typer.main

from edgeq import settings as settings_mod
from edgeq.cli.main import app
from edgeq.lab.inventory import RUN_FIELDS
from edgeq.runners import benchmark_model, option_specs
from edgeq.settings import SPECS, RunSettings
from edgeq_device import edgeq_runner

#: The settings the device runner's own argparse takes (the rest stay on the host).
RUNNER_SETTINGS = {"threads", "runs", "min_s", "warmup_runs", "warmup_min_s", "max_s",
                   "max_samples", "batch_size", "limit"}  # fmt: skip


def _runner_specs():
    specs = [s for s in SPECS if s.runner]
    assert {s.name for s in specs} == RUNNER_SETTINGS
    return specs


def _cli_params(name: str) -> dict:
    group = typer.main.get_command(app)
    return {p.name: p for p in group.commands[name].params}


def test_cli_defaults_are_the_settings_defaults():
    for command in ("deploy", "bench"):
        params = _cli_params(command)
        cli_specs = [spec for spec in option_specs() if spec.cli]  # shared and each runner's
        assert {"threads", "runs", "use_gpu", "taskset"} <= {spec.name for spec in cli_specs}
        for spec in cli_specs:
            assert spec.name in params, (command, spec.name)
            want = str(spec.default) if spec.many else spec.default  # "1" or "1,2,4"
            assert params[spec.name].default == want, (command, spec.name)


def test_lab_run_keys_are_the_settings_with_their_defaults():
    assert set(RUN_FIELDS) == {s.name for s in option_specs() if s.lab}
    assert {"threads", "runs", "min_s", "batch_size", "repeat", "use_gpu", "taskset"} <= set(
        RUN_FIELDS
    )  # shared and a runner's own
    for name, field in RUN_FIELDS.items():
        assert field.default == settings_mod.spec(name).default, name
    # the drift the architecture issue found: one accuracy batch size everywhere
    assert RUN_FIELDS["batch_size"].default == RunSettings().batch_size == 64


def test_the_device_runner_has_the_same_defaults():
    args = edgeq_runner.parse_args(["model.tflite"])
    for spec in _runner_specs():
        dest = spec.runner.lstrip("-").replace("-", "_")
        want = 0 if spec.name == "limit" else spec.default  # the runner's "no limit"
        assert getattr(args, dest) == want, spec.name


def test_runner_argv_round_trips_through_the_runners_parser():
    s = RunSettings(
        threads=3, runs=7, min_s=0.25, warmup_runs=2, warmup_min_s=0.0, max_s=9.5,
        batch_size=32, limit=50,
    )  # fmt: skip
    args = edgeq_runner.parse_args(["m.tflite", *settings_mod.argv(s.validate())])
    for spec in _runner_specs():
        assert getattr(args, spec.runner.lstrip("-").replace("-", "_")) == getattr(s, spec.name), (
            spec.name
        )


def test_native_argv_uses_the_tools_flag_names():
    from tests.support.android import STANDIN

    flags = {ln.split('"')[1] for ln in STANDIN.read_text().splitlines() if '": ' in ln}
    s = RunSettings(use_xnnpack=True, use_gpu=True, use_nnapi=True, op_profiling=True)
    ours = benchmark_model.native_flags(s)
    assert {a.split("=")[0] for a in ours} >= {
        "--num_threads", "--num_runs", "--min_secs", "--use_xnnpack", "--use_gpu", "--use_nnapi",
        "--enable_op_profiling",
    }  # fmt: skip
    assert "--use_gpu=true" in ours and "--enable_op_profiling=true" in ours
    for arg in ours:
        assert arg.startswith("--") and arg[2:].split("=")[0] in flags, arg


def test_several_thread_settings():
    s = RunSettings(threads="1,2,4").validate()
    assert s.threads == (1, 2, 4) and s.thread_settings == (1, 2, 4)
    assert RunSettings(threads=[2]).threads == 2
    assert RunSettings.from_dict({"threads": [1, 4]}).thread_settings == (1, 4)


def test_bad_values_name_the_option():
    import pytest

    from edgeq.errors import UsageError

    for kw, fragment in (
        ({"threads": 0}, "--threads must be >= 1"),
        ({"min_s": float("nan")}, "--min-s must be a finite number"),
        ({"timeout": 0}, "--timeout must be > 0"),
        ({"taskset": "f0;reboot"}, "taskset mask"),
        ({"threads": "1,x"}, "--threads takes whole numbers"),
        ({"threads": "2,2"}, "lists a value twice"),
        ({"threads": "1,0"}, "--threads must be >= 1"),
        ({"repeat": 0}, "--repeat must be >= 1"),
        ({"pin_governor": "perf; reboot"}, "not a governor name"),
    ):
        with pytest.raises(UsageError, match=fragment):
            RunSettings(**kw).validate()
