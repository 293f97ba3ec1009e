"""The `adb+ssh` target: the real `adb` client runs on an "exporter host" (a real sshd on
127.0.0.1) and drives the emulated phone from there; files travel host → exporter → phone.
"""

from __future__ import annotations

import json
import time

import pytest

from edgeq import config
from edgeq.errors import CommandTimeout, ConnectError
from edgeq.targets import make_target
from tests.support.android import PHONE_BUDGET, device_path
from tests.support.benchmark_model import QEMU_ENV, binary
from tests.support.config import write_config


def hop_values(server, emu, **over) -> dict:
    """[targets.NAME] keys: the exporter host's SSH keys + the phone's serial and server."""
    values = server.target_values(transport="adb+ssh", serial="EDGEQ0001")
    values.update(adb_host="127.0.0.1", adb_port=emu.port)
    values.update(over)
    return values


def hop_target(server, emu, keep: bool = False, **over):
    cfg = config.validate_target("phone", hop_values(server, emu, **over), "test")
    return make_target(cfg, keep)


def test_commands_files_and_cleanup_on_both_hosts(sshd_factory, phones, tmp_path):
    server, emu = sshd_factory(), phones()
    t = hop_target(server, emu)
    assert t.platform == "android"
    assert t.identity() == f"adb+ssh://{t.hop.describe()}/EDGEQ0001"
    with t:
        res = t.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
        assert (res.exit_code, res.stdout, res.stderr) == (3, "out\n", "err\n")
        assert t.run(["printf", "%s", "it's a $HOME"]).stdout == "it's a $HOME"
        src = tmp_path / "blob.bin"
        src.write_bytes(bytes(range(256)) * 300)
        first = t.ensure_file(src, ".bin")
        again = t.ensure_file(src, ".bin")
        assert first == again and t.files_sent[-1]["sent"] == 0  # cached by content
        assert device_path(emu, first).read_bytes() == src.read_bytes()
        back = tmp_path / "back.bin"
        t.get(first, back)
        assert back.read_bytes() == src.read_bytes()
        hop_dir = t.hop.workdir
        wd = t.workdir
    assert not device_path(emu, wd).exists()  # the phone's run folder is gone
    with t.hop:
        listing = t.hop.run(["ls", "-A", hop_dir], check=False)
    assert listing.exit_code != 0  # and so is the exporter host's transfer folder


def test_timeout_kills_the_remote_adb_client(sshd_factory, phones):
    server, emu = sshd_factory(), phones()
    with hop_target(server, emu) as t:
        t0 = time.monotonic()
        with pytest.raises(CommandTimeout, match="via "):
            t.run(["sleep", "30"], timeout=1.5, killable=True)
        assert time.monotonic() - t0 < 15
        with t.hop:
            ps = t.hop.run("ps -eo args | grep '[a]db.*sleep 30'", check=False)
        assert ps.stdout.strip() == ""


def test_errors_name_the_exporter_host(sshd_factory, phones, tmp_path):
    server, emu = sshd_factory(), phones()
    with pytest.raises(ConnectError, match=r"'EDGEQ9999' is not attached .* on 127\.0\.0\.1"):
        hop_target(server, emu, serial="EDGEQ9999").open()
    with pytest.raises(ConnectError, match="was not found on 127.0.0.1; install it there"):
        hop_target(server, emu, adb_path=str(tmp_path / "no-adb")).open()


def test_deploy_through_the_exporter_host(sshd_factory, phones, cli, artifacts, data_dir, tmp_path):
    """`edgeq deploy` with the benchmark_model runner works through the hop unchanged."""
    server, emu = sshd_factory(), phones()
    aarch64 = binary("aarch64")  # the real tool, run under qemu-user on this host
    values = hop_values(
        server, emu, benchmark_binary=str(aarch64), use_python_runner=False, env=dict(QEMU_ENV)
    )
    cfg = write_config(tmp_path / "edgeq.toml", {"phone": values}, PHONE_BUDGET)
    out, _ = artifacts
    res = cli(
        "deploy", "--target", "phone", "--config", cfg, "--model", out / "model_int8.tflite",
        "--data", data_dir, "--results", tmp_path / "results", "--runs", "10", "--min-s", "0",
        "--warmup-runs", "1", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["ok"] is True
    assert doc["run"]["runner"]["name"] == "benchmark_model"
    assert doc["target"]["transport"] == "adb+ssh"
    assert doc["run"]["latency_ms"]["invoke"]["count"] >= 10
