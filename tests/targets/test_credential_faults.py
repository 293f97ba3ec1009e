"""Credentials: a changed host key is refused with how to verify and update it; a password
login takes the password only from the variable `password_env` names, and the password
appears nowhere — not in the output, the logs, the results file or the lab history."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess

import pytest

from tests.support import sshd
from tests.support.config import write_config
from tests.support.faults import EASY, error_line
from tests.support.lab import write_inventory


@pytest.fixture()
def impostor_known_hosts(pi_server, tmp_path):
    """known_hosts that records ANOTHER key for the test Pi (the Pi was reinstalled, or
    someone is in the middle); returns (path, the real key's SHA256 fingerprint)."""
    sshd.keygen(tmp_path / "impostor_key")
    pub = (tmp_path / "impostor_key.pub").read_text().split()
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{pi_server.port} {pub[0]} {pub[1]}\n")
    real = subprocess.run(
        ["ssh-keygen", "-lf", str(pi_server.host_key) + ".pub"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    return kh, real


def test_changed_host_key_message(pi_deploy, impostor_known_hosts, pi_server):
    kh, real = impostor_known_hosts
    res = pi_deploy(known_hosts=str(kh))
    assert res.exit_code == 3
    line = error_line(res.stderr)
    assert f"does NOT match {kh}" in line
    assert f"it offers ssh-ed25519 {real}" in line  # what to compare with
    assert "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub" in line  # how to verify
    assert f"ssh-keygen -f {kh} -R '[127.0.0.1]:{pi_server.port}'" in line  # how to update
    assert f"ssh-keyscan -p {pi_server.port} 127.0.0.1 >> {kh}" in line


# --------------------------------------------------------------------------- passwords


@pytest.fixture(scope="module")
def password_login(sshd_factory):
    """A login name with a password on a test sshd that allows password logins.

    The test sshd serves this machine, where the tests run as root; the login is a second
    name for uid 0 (so it can run the device venv), made for this module and deleted."""
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("chpasswd"):
        pytest.skip("needs root with useradd/chpasswd (passwd package)")
    name = f"edgeqpw{os.getpid() % 100000}"
    secret = "pw-" + secrets.token_urlsafe(18)
    subprocess.run(
        ["useradd", "-o", "-u", "0", "-g", "0", "-M", "-d", "/root", "-s", "/bin/sh", name],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{secret}", text=True, check=True)
        server = sshd_factory(password_auth=True)
        yield server, name, secret
    finally:
        subprocess.run(["userdel", "-f", name], capture_output=True)


def _password_target(server, name, pi_python, workdir, **over):
    values = server.target_values(python=pi_python, workdir=str(workdir), user=name)
    del values["key_file"]  # no key: the password it is
    values.update(over)
    return values


def _grep(folder, secret: str) -> list[str]:
    """Files under `folder` whose bytes hold `secret`."""
    hits = []
    for p in folder.rglob("*"):
        if p.is_file() and secret.encode() in p.read_bytes():
            hits.append(str(p))
    return hits


def test_password_from_password_env_is_never_shown(
    password_login, deploy_cli, cli, tmp_path, pi_python, artifacts, monkeypatch
):
    server, name, secret = password_login
    wd = tmp_path / "wd"
    wd.mkdir()
    monkeypatch.setenv("EDGEQ_TEST_PI_PASSWORD", secret)
    values = _password_target(server, name, pi_python, wd, password_env="EDGEQ_TEST_PI_PASSWORD")
    cfg = write_config(tmp_path / "edgeq.toml", {"pi": values}, EASY)
    res = deploy_cli("pi", cfg, artifacts[0] / "model_int8.tflite", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["target"]["address"].startswith(f"{name}@")
    out = res.stdout + res.stderr
    model = artifacts[0] / "model_int8.tflite"
    # a wrong password: refused, naming the variable, not its value (with --debug too)
    monkeypatch.setenv("EDGEQ_TEST_PI_PASSWORD", secret[:-1])
    bad = cli("--debug", "deploy", "--target", "pi", "--config", cfg, "--model", model, "--no-data")
    assert bad.exit_code == 3
    assert "refused the password from $EDGEQ_TEST_PI_PASSWORD" in bad.stderr  # (and a traceback)
    out += bad.stdout + bad.stderr
    # unset: a clear error before any connection
    monkeypatch.delenv("EDGEQ_TEST_PI_PASSWORD")
    unset = cli("doctor", "--target", "pi", "--config", cfg, "--json")
    assert unset.exit_code == 3
    detail = json.loads(unset.stdout)["checks"][0]["detail"]
    assert "EDGEQ_TEST_PI_PASSWORD (password_env in [targets.pi]) is not set" in detail
    out += unset.stdout + unset.stderr
    assert secret not in out
    assert _grep(tmp_path, secret) == []  # results file, config, caches: nowhere
    assert secret not in (server.root / "sshd.log").read_text()


def test_password_in_the_lab_stays_out_of_the_history(
    password_login, cli, tmp_path, pi_python, artifacts, lab_sections, monkeypatch
):
    server, name, secret = password_login
    wd = tmp_path / "wd"
    wd.mkdir()
    monkeypatch.setenv("EDGEQ_TEST_LAB_PASSWORD", secret)
    lab_sections["lab"]["models"] = [str(artifacts[0] / "model_int8.tflite")]
    inv = write_inventory(
        tmp_path / "lab.toml",
        lab_sections,
        {
            "pi": _password_target(
                server, name, pi_python, wd, password_env="EDGEQ_TEST_LAB_PASSWORD"
            )
        },
    )
    res = cli("lab", "run", "--inventory", inv, "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["results"][0]["status"] == "pass"
    rep = cli("lab", "report", "--db", tmp_path / "history.sqlite", "--out", tmp_path / "rep/",
              "-f", "json,md,html")  # fmt: skip
    assert rep.exit_code == 0, rep.stderr
    assert secret not in res.stdout + res.stderr + rep.stdout + rep.stderr
    assert _grep(tmp_path, secret) == []  # history (and its WAL), reports, locks


def test_a_password_written_in_edgeq_toml_is_refused(cli, tmp_path, pi_server):
    values = {**pi_server.target_values(), "password": "hunter2"}
    cfg = write_config(tmp_path / "edgeq.toml", {"pi": values})
    res = cli("doctor", "--target", "pi", "--config", cfg)
    assert res.exit_code == 2
    line = error_line(res.stderr)
    assert "key 'password'" in line and 'password_env = "VARIABLE"' in line
    assert "hunter2" not in res.stderr
