"""Transfers without SFTP: a server that refuses the subsystem (dropbear, minimal images)
gets its files over the exec channel — size and sha256 checked on the device before the
rename — and the result says which transfer was used."""

from __future__ import annotations

import json

import pytest

from edgeq import config
from edgeq.errors import CommandError, DeviceError
from edgeq.targets import make_target
from tests.support.config import write_config
from tests.support.faults import EASY, error_line, leftovers


@pytest.fixture(scope="module")
def no_sftp_server(sshd_factory):
    return sshd_factory(sftp=False)


def _target(server, **over):
    return make_target(config.validate_target("pi", server.target_values(**over), "test"))


def test_deploy_without_sftp_uses_the_exec_channel(
    deploy_cli, tmp_path, no_sftp_server, pi_python, pi_workdir, artifacts
):
    cfg = write_config(
        tmp_path / "edgeq.toml",
        {"pi": no_sftp_server.target_values(python=pi_python, workdir=str(pi_workdir))},
        EASY,
    )
    res = deploy_cli("pi", cfg, artifacts[0] / "model_int8.tflite", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["transfer"]["method"] == "exec"
    assert doc["transfer"]["bytes_sent"] > 100_000  # runner, model and data all went
    assert doc["run"]["accuracy"]["samples"] == 1000  # ...and the result came back
    assert leftovers(pi_workdir) == []
    saved = json.loads(next((tmp_path / "results").glob("*.json")).read_text())
    assert saved["transfer"]["method"] == "exec"


def test_forcing_sftp_on_a_server_without_it_names_the_fix(
    deploy_cli, tmp_path, no_sftp_server, pi_python, pi_workdir, artifacts
):
    values = no_sftp_server.target_values(python=pi_python, workdir=str(pi_workdir))
    cfg = write_config(tmp_path / "edgeq.toml", {"pi": {**values, "transfer": "sftp"}})
    res = deploy_cli("pi", cfg, artifacts[0] / "model_int8.tflite")
    assert res.exit_code == 3
    line = error_line(res.stderr)
    assert "no SFTP subsystem" in line and 'transfer = "auto"' in line
    assert leftovers(pi_workdir) == []


def test_sftp_is_used_when_offered(pi_deploy):
    res = pi_deploy("--json", budget=EASY)
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["transfer"]["method"] == "sftp"


def test_exec_transfer_roundtrip_and_checks(pi_server, pi_workdir, tmp_path):
    """transfer = "exec" on any server: bytes arrive intact both ways, a copy that differs
    from what was sent is refused (and removed), a missing file is named."""
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 4000 + b"\xff\xfe not utf-8")
    with _target(pi_server, workdir=str(pi_workdir), transfer="exec") as t:
        remote = t.ensure_file(blob, ".bin")
        assert t.transfer_method == "exec" and t.bytes_sent == blob.stat().st_size
        back = tmp_path / "back.bin"
        t.get(remote, back)
        assert back.read_bytes() == blob.read_bytes()
        with pytest.raises(CommandError, match="no such file on the device"):
            t.get(f"{pi_workdir}/nope", tmp_path / "x")
        # a device whose copy is not what was sent: _install refuses to rename it in
        tmp = f"{remote}.partX"
        t.put(blob, tmp)
        with pytest.raises(DeviceError, match="different sha256"):
            t._install(tmp, remote + "2", "0" * 64, blob.name)
        t.run(["rm", "-f", tmp])
    assert leftovers(pi_workdir) == []
