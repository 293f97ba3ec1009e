"""The labgrid inventory: `labgrid://HOST:PORT?TAG=VALUE` turns a real coordinator's places
into devices ([labgrid] defaults, [devices.PLACE] overrides); bad URLs, a missing extra
and tags that select nothing are one-line errors (exit 2)."""

from __future__ import annotations

import sys

import pytest

from edgeq.errors import ConfigError
from edgeq.lab import load_inventory
from tests.support.lab import write_inventory


def toml(tmp_path, inventory: str, labgrid: dict | None = None, devices: dict | None = None):
    sections = {"lab": {"inventory": inventory, "db": str(tmp_path / "h.sqlite")}}
    if labgrid is not None:
        sections["labgrid"] = labgrid
    return write_inventory(tmp_path / "lab.toml", sections, devices or {})


@pytest.mark.parametrize(
    "url, wanted",
    [
        ("labgrid://", "is not a labgrid inventory URL"),
        ("labgrid://coord:port", "the port is not a number"),
        ("labgrid://coord:20408/places", "is not a labgrid inventory URL"),
        ("labgrid://coord?board", "every filter must be TAG=VALUE"),
        ("labgrid://coord?edgeq-health=bad", "which edgeq manages"),
    ],
)
def test_bad_urls_are_one_line_config_errors(tmp_path, url, wanted):
    with pytest.raises(ConfigError) as exc:
        load_inventory(toml(tmp_path, url))
    assert wanted in exc.value.message and "labgrid://HOST:PORT?TAG=VALUE" in exc.value.message
    assert "\n" not in exc.value.message


def test_unknown_key_of_the_labgrid_table(tmp_path):
    with pytest.raises(ConfigError, match=r"\[labgrid\]: unknown key 'password'"):
        load_inventory(toml(tmp_path, "labgrid://coord", {"password": "x"}))


def test_without_the_extra_the_install_command(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "labgrid", None)  # `import labgrid` fails as if absent
    res = cli("lab", "run", "--inventory", "labgrid://127.0.0.1:9?edgeq=nightly")
    assert res.exit_code == 2
    assert "pip install 'edgeq[labgrid]'" in res.stderr and res.stderr.count("\n") == 1


def test_places_become_devices(tmp_path, labgrid_rig):
    lab, servers = labgrid_rig["lab"], labgrid_rig["servers"]
    keys = dict(labgrid_rig["labgrid"], accept_new_host_key=True)
    path = toml(
        tmp_path,
        f"{lab.url}?suite=pair",
        keys,
        {
            "pi-a": {"description": "the desk Pi", "budget": {"max_latency_ms": 5}},
            "not-a-place": {"enabled": False},  # overrides for absent places change nothing
        },
    )
    inv = load_inventory(path)
    assert sorted(inv.devices) == ["pi-a", "pi-b"]  # "bare" has no NetworkService
    a = inv.devices["pi-a"]
    assert a.transport == "ssh" and a.tags == ("suite=pair",)
    v = a.target.values
    assert (v["host"], v["port"], v["user"]) == ("127.0.0.1", servers["pi-1"].port, "root")
    assert v["key_file"] == keys["key_file"] and v["known_hosts"] == keys["known_hosts"]
    assert v["python"] == keys["python"] and v["accept_new_host_key"] is True
    assert v["description"] == "the desk Pi"
    assert inv.budget_for(a).max_latency_ms == 5
    assert a.identity == f"labgrid://{lab.address}/pi-a"
    assert inv.devices["pi-b"].target["port"] == servers["pi-2"].port
    assert any("place bare" in n for n in inv.backend.notices())
    inv.backend.close()


def test_a_phone_place_becomes_an_adb_ssh_device(tmp_path, labgrid_rig):
    lab = labgrid_rig["lab"]
    inv = load_inventory(toml(tmp_path, f"{lab.url}?suite=phone", {"key_file": "keys/lab"}))
    phone = inv.devices["phone"]
    assert phone.transport == "adb+ssh"
    v = phone.target.values
    assert v["serial"] == "edgeq_phone1" and v["port"] == labgrid_rig["servers"]["phone-host"].port
    assert v["key_file"] == str(tmp_path / "keys" / "lab")  # relative to lab.toml
    inv.backend.close()


def test_tags_that_select_nothing(cli, tmp_path, labgrid_rig):
    lab = labgrid_rig["lab"]
    res = cli("lab", "run", "--inventory", f"{lab.url}?suite=nothing&board=pi9")
    assert res.exit_code == 2
    assert "carries the tags suite=nothing&board=pi9" in res.stderr
    assert "pi-a" in res.stderr and "set-tags" in res.stderr
