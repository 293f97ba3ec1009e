"""lab.toml: validated on load, errors name file, device and key; the shipped example works."""

from __future__ import annotations

import json
import re

import pytest

from edgeq.errors import ConfigError
from edgeq.lab import load_inventory
from edgeq.lab.inventory import parse_inventory
from tests.support.lab import write_inventory

pytestmark = pytest.mark.unit  # the fast tier: `make test-unit`

PI = {"transport": "ssh", "host": "pi4.lan", "user": "pi", "key_file": "~/.ssh/lab"}


def load(tmp_path, devices, **sections):
    return load_inventory(write_inventory(tmp_path / "lab.toml", sections, devices))


def error(tmp_path, devices, **sections) -> str:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, devices, **sections)
    assert exc.value.exit_code == 2
    return exc.value.message


def test_example_inventory_loads_and_its_commented_devices_are_valid(repo_root, tmp_path):
    text = (repo_root / "lab.toml").read_text()
    inv = load_inventory(repo_root / "lab.toml")
    assert list(inv.devices) == ["local"] and inv.lab["models"] == []  # trains on the fly
    assert inv.devices["local"].transport == "local"
    # Uncomment the example Pis and phone: they must validate too.
    lines = []
    for ln in text.splitlines():
        m = re.match(r"^# (\[devices\.|[a-z_]+ = )(.*)$", ln)
        lines.append(ln[2:] if m else ln)
    (tmp_path / "lab.toml").write_text("\n".join(lines))
    full = load_inventory(tmp_path / "lab.toml")
    assert set(full.devices) == {"local", "pi4-desk", "pi-zero", "pixel7"}
    pi = full.devices["pi4-desk"]
    assert pi.tags == ("pi", "arm64") and pi.features == ("neon",) and pi.timeout_s == 1200
    assert full.budget_for(pi).max_latency_ms == 2.0
    assert full.budget_for(full.devices["local"]).max_latency_ms == 1.0
    assert full.regression_for(full.devices["local"])["min_rel"] == 0.25
    assert full.regression_for(pi)["min_rel"] == full.regression["min_rel"]
    assert full.run_for(full.devices["pi-zero"])["runs"] == 50
    assert full.devices["pi-zero"].modes == ("int8",)
    assert full.devices["pixel7"].identity.startswith("adb://")
    assert [d.name for d in full.select("pi")] == ["pi4-desk", "pi-zero"]
    assert [d.name for d in full.select("neon")] == ["pi4-desk"]


def test_device_keys_are_the_target_keys_plus_lab_keys(tmp_path):
    inv = load(
        tmp_path,
        {
            "pi": {
                **PI,
                "port": 2222,
                "tags": ["pi"],
                "timeout_s": 30,
                "retries": 0,
                "budget": {"max_latency_ms": 3},
                "run": {"runs": 10},
            },
            "box": {"transport": "local", "enabled": False},
        },
        lab={"timeout_s": 99, "retries": 4},
    )
    pi = inv.devices["pi"]
    assert pi.target.values["port"] == 2222 and pi.identity == "ssh://pi@pi4.lan:2222"
    assert (pi.timeout_s, pi.retries) == (30, 0)
    assert inv.run_for(pi)["runs"] == 10 and inv.run_for(pi)["min_s"] == 1.0
    assert inv.select() == [pi]  # box is disabled
    assert (inv.devices["box"].timeout_s, inv.devices["box"].retries) == (99, 4)


@pytest.mark.parametrize(
    ("device", "wanted"),
    [
        ({**PI, "hots": "x"}, r"\[devices\.pi\]: unknown key 'hots'"),
        ({**PI, "port": "22"}, r"\[devices\.pi\]: key 'port' must be int"),
        ({"transport": "ssh", "user": "pi"}, r"\[devices\.pi\]: missing required key 'host'"),
        ({**PI, "transport": "serial"}, r"\[devices\.pi\]: key 'transport' must be one of"),
        ({**PI, "password": "hunter2"}, r"\[devices\.pi\]: key 'password'.*password_env"),
        ({**PI, "modes": ["int4"]}, r"\[devices\.pi\]: key 'modes': 'int4' is not one of"),
        ({**PI, "budget": {"max_kb": 1}}, r"\[devices\.pi\.budget\]: unknown key 'max_kb'"),
        ({**PI, "run": {"runs": 0}}, r"\[devices\.pi\.run\]: key 'runs' must be >= 1"),
        ({**PI, "timeout_s": 0}, r"\[devices\.pi\]: key 'timeout_s' must be > 0"),
        ({"transport": "local", "password_env": "X"}, r"'password_env' only applies"),
    ],
)
def test_errors_name_file_device_and_key(tmp_path, device, wanted):
    msg = error(tmp_path, {"pi": device})
    assert str(tmp_path / "lab.toml") in msg
    assert re.search(wanted, msg), msg


def test_section_errors(tmp_path):
    assert "unknown section [labs]" in error(tmp_path, {"pi": PI}, labs={})
    assert "[lab]: key 'parallel' must be >= 1" in error(tmp_path, {"pi": PI}, lab={"parallel": 0})
    msg = error(tmp_path, {"pi": PI}, regression={"metrics": ["fps"]})
    assert "[regression]: key 'metrics': 'fps' is not one of" in msg
    assert "no devices" in error(tmp_path, {})
    with pytest.raises(ConfigError, match="inventory not found"):
        load_inventory(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        (tmp_path / "bad.toml").write_text("[lab\n")
        load_inventory(tmp_path / "bad.toml")


def test_password_comes_from_the_environment(tmp_path, monkeypatch):
    inv = parse_inventory(
        {"devices": {"pi": {**PI, "password_env": "EDGEQ_TEST_PI_PW"}}}, tmp_path / "lab.toml"
    )
    pi = inv.devices["pi"]
    assert not pi.target.values.get("password")  # the loaded inventory holds no secret
    monkeypatch.delenv("EDGEQ_TEST_PI_PW", raising=False)
    with pytest.raises(ConfigError, match="EDGEQ_TEST_PI_PW .* is not set"):
        pi.resolved_target()
    monkeypatch.setenv("EDGEQ_TEST_PI_PW", "s3cret")
    assert pi.resolved_target().values["password"] == "s3cret"


def test_cli_bad_inventory_exits_2_with_one_line(cli, tmp_path):
    inv = write_inventory(tmp_path / "lab.toml", {}, {"pi": {**PI, "prot": 22}})
    res = cli("lab", "run", "--inventory", inv)
    assert res.exit_code == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgeq: error:")
    assert str(inv) in lines[0] and "device 'pi'" in lines[0] and "unknown key 'prot'" in lines[0]
    res = cli("lab", "run", "--inventory", inv, "--json")
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 2 and doc["error"]["type"] == "ConfigError"
    assert "[devices.pi]: unknown key 'prot'" in doc["error"]["message"]
    assert "'password'" not in doc["error"]["message"]  # not offered as an allowed key


def test_cli_only_must_select_something(cli, tmp_path):
    inv = write_inventory(tmp_path / "lab.toml", {}, {"pi": PI})
    res = cli("lab", "run", "--inventory", inv, "--only", "android")
    assert res.exit_code == 2 and "--only 'android' selects no enabled device" in res.stderr


def test_run_key_op_profile_is_an_alias_of_op_profiling(tmp_path):
    inv = load(
        tmp_path,
        {"pi": {**PI, "run": {"op_profile": True}}, "box": {"transport": "local"}},
        run={"op_profile": False, "runs": 10},
    )
    assert inv.run_for(inv.devices["pi"])["op_profiling"] is True
    assert inv.run_for(inv.devices["box"])["op_profiling"] is False
    assert "op_profile" not in inv.run_for(inv.devices["pi"])
    msg = error(tmp_path, {"pi": PI}, run={"op_profile": True, "op_profiling": True})
    assert "'op_profiling' and 'op_profile' are the same setting" in msg
    msg = error(tmp_path, {"pi": {**PI, "run": {"op_profile": "yes"}}})
    assert "op_profiling" in msg and "bool" in msg
