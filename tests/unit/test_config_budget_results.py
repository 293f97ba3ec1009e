"""edgeq.toml validation, budget verdicts and result-document validation."""

from __future__ import annotations

import copy
import json

import pytest

from edgeq import config
from edgeq.budget import EMULATED_NOTE, Budget, judge
from edgeq.errors import ConfigError, RunnerError
from edgeq.results import parse_run, validate_run


def _write(tmp_path, text):
    p = tmp_path / "edgeq.toml"
    p.write_text(text)
    return p


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = config.load()
    assert cfg.path is None and list(cfg.targets) == ["local"]
    assert cfg.budget["max_model_kb"] == 50 and cfg.budget["latency_percentile"] == "p90"


def test_found_in_current_directory(tmp_path, monkeypatch):
    _write(tmp_path, '[targets.pi]\ntransport = "ssh"\nhost = "pi.local"\n')
    monkeypatch.chdir(tmp_path)
    cfg = config.load()
    pi = cfg.target("pi")
    assert pi["port"] == 22 and pi["python"] == "python3" and pi["accept_new_host_key"] is False


def test_relative_paths_are_taken_from_the_config_folder(tmp_path):
    p = _write(tmp_path, '[targets.pi]\ntransport = "ssh"\nhost = "h"\nkey_file = "k/id"\n')
    assert config.load(p).target("pi")["key_file"] == str(tmp_path / "k" / "id")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('[targets.pi]\ntransport = "ssh"\n', "[targets.pi]: missing required key 'host'"),
        (
            '[targets.pi]\ntransport = "ssh"\nhost = "h"\nprot = 22\n',
            "[targets.pi]: unknown key 'prot'",
        ),
        ('[targets.pi]\ntransport = "ssh"\nhost = "h"\nport = "22"\n', "key 'port' must be int"),
        ('[targets.pi]\ntransport = "ssh"\nhost = "h"\nport = 70000\n', "must be in 1..65535"),
        ('[targets.pi]\ntransport = "carrier-pigeon"\n', "key 'transport' must be one of"),
        ('[targets.pi]\nhost = "h"\n', "missing required key 'transport'"),
        ("[budget]\nmax_model_kb = -1\n", "[budget]: key 'max_model_kb' must be >= 0"),
        ('[budget]\nlatency_percentile = "p42"\n', "key 'latency_percentile' must be one of"),
        ("[budegt]\n", "unknown section [budegt]"),
        ('[lab]\ninventry = "lab.toml"\n', "[lab]: unknown key 'inventry'"),
        ("[targets\n", "not valid TOML"),
        (
            '[targets.pi]\ntransport = "ssh"\nhost = "h"\naccept_new_host_key = 1\n',
            "key 'accept_new_host_key' must be bool",
        ),
    ],
)
def test_errors_name_file_section_and_key(tmp_path, text, fragment):
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        config.load(p)
    assert fragment in exc.value.message and str(p) in exc.value.message


def test_unknown_target_lists_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match="unknown target 'pi'.*known targets: local"):
        config.load(_write(tmp_path, "")).target("pi")


def test_cli_config_errors_exit_2(cli, tmp_path):
    p = _write(tmp_path, '[targets.pi]\ntransport = "ssh"\n')
    res = cli("targets", "--config", p)
    assert res.exit_code == 2 and "missing required key 'host'" in res.stderr
    res = cli("doctor", "--target", "nope", "--config", tmp_path / "missing.toml")
    assert res.exit_code == 2 and "config file not found" in res.stderr


def test_budget_file_top_level_or_section(tmp_path):
    a = tmp_path / "a.toml"
    a.write_text("max_latency_ms = 2.5\n")
    b = tmp_path / "b.toml"
    b.write_text("[budget]\nmin_accuracy = 0.9\n")
    assert Budget.load(a).max_latency_ms == 2.5
    assert Budget.load(b).min_accuracy == 0.9 and Budget.load(b).max_model_kb == 50


# --------------------------------------------------------------------------- verdicts


def _run(**over):
    doc = {
        "schema": "edgeq.run/1",
        "ok": True,
        "runner": {"name": "edgeq_runner"},
        "model": {"sha256": "ab" * 32, "bytes": 40 * 1024},
        "phases_ms": {"load": 1.0, "steady_state": 1000.0},
        "latency_ms": {"invoke": {"count": 100, "p50": 0.5, "p90": 0.8, "p99": 1.4}},
        "accuracy": {"samples": 1000, "correct": 990, "top1": 0.99, "source": "device"},
        "environment": {"machine": "aarch64", "emulated": False},
    }
    for k, v in over.items():
        doc[k] = v
    return doc


def test_book_budget_pass():
    v = judge(Budget(), _run(), reference_top1=0.992)
    assert v.passed and [c.metric for c in v.checks] == [
        "model_size",
        "latency_p90",
        "accuracy",
        "accuracy_drop",
    ]
    drop = v.checks[3]
    assert drop.measured == pytest.approx(0.2) and drop.source == "device vs float32 on host"


def test_each_limit_can_fail():
    assert not judge(Budget(max_model_kb=39), _run()).passed
    assert not judge(Budget(latency_percentile="p99"), _run()).passed
    assert not judge(Budget(min_accuracy=0.995), _run()).passed
    assert not judge(Budget(), _run(), reference_top1=0.999).passed


def test_emulated_latency_is_not_judged():
    run = _run(
        environment={"machine": "aarch64", "emulated": True},
        latency_ms={"invoke": {"count": 5, "p90": 80.0}},
    )
    v = judge(Budget(), run, 0.99)
    lat = next(c for c in v.checks if c.metric == "latency_p90")
    assert lat.passed is None and lat.note == EMULATED_NOTE and v.passed


def test_missing_percentile_fails_with_a_reason():
    run = _run(
        latency_ms={"invoke": {"count": 50, "mean": 0.4}}, runner={"name": "benchmark_model"}
    )
    lat = next(c for c in judge(Budget(), run).checks if c.metric == "latency_p90")
    assert lat.passed is False and "does not report p90" in lat.note


def test_no_reference_no_drop_judgement():
    drop = judge(Budget(), _run()).checks[3]
    assert drop.passed is None and "no float32 reference" in drop.note


# --------------------------------------------------------------------------- validation


def test_valid_document_passes():
    assert validate_run(_run())["ok"] is True
    doc = copy.deepcopy(_run())
    doc["latency_ms"]["invoke"].update(steady_p50=0.45, steady_p90=0.6, steady_window=50)
    assert validate_run(doc)["latency_ms"]["invoke"]["steady_p50"] == 0.45


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d.update(schema="edgeq.run/9"), "schema must be"),
        (lambda d: d["model"].pop("sha256"), "model.sha256 must be a string"),
        (lambda d: d["latency_ms"]["invoke"].update(p90="fast"), "latency_ms.invoke.p90"),
        (lambda d: d["latency_ms"]["invoke"].update(count=0), "latency_ms.invoke.count"),
        (lambda d: d["accuracy"].update(top1=1.5), "accuracy.top1"),
        (lambda d: d["accuracy"].update(correct=2000), "accuracy.top1"),
        (lambda d: d.pop("environment"), "environment.machine"),
        (lambda d: d["phases_ms"].update(load=float("nan")), "phases_ms.load"),
        # a device that claims a steadiest stretch faster/slower than its own samples allow
        (lambda d: d["latency_ms"]["invoke"].update(steady_p50=0.9), "invoke.steady_p50"),
        (lambda d: d["latency_ms"]["invoke"].update(min=0.4, steady_p50=0.1), "steady_p50"),
        (
            lambda d: d["latency_ms"]["invoke"].update(steady_p50=0.4, steady_p90=0.3),
            "invoke.steady_p90",
        ),
    ],
)
def test_invalid_documents_name_the_key(mutate, fragment):
    doc = copy.deepcopy(_run())
    mutate(doc)
    with pytest.raises(RunnerError, match=fragment.replace(".", r"\.")):
        validate_run(doc)


def test_truncated_and_error_documents():
    text = json.dumps(_run())
    with pytest.raises(RunnerError, match="not valid JSON .*truncated"):
        parse_run(text[:100])
    err = {
        "schema": "edgeq.run/1",
        "ok": False,
        "error": {"message": "no TFLite interpreter", "hint": "pip install x"},
    }
    with pytest.raises(RunnerError, match="runner failed: no TFLite interpreter; pip install x"):
        parse_run(json.dumps(err))


def test_cli_error_line_keeps_brackets(cli, tmp_path):
    """Rich markup must not eat `[targets.pi]` out of error messages."""
    p = _write(tmp_path, '[targets.pi]\ntransport = "ssh"\n')
    res = cli("targets", "--config", p)
    assert f"{p} [targets.pi]: missing required key 'host'" in res.stderr
