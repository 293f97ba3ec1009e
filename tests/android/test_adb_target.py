"""The adb target through the REAL adb client against the emulated device: commands and exit
codes with and without shell v2, quoting through the double shell parsing, files, the
per-run workdir, timeouts, and one clear error for every state a phone can be in."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from edgeq.errors import AuthError, CommandError, CommandTimeout, ConnectError
from tests.support.adb_device import DeviceSpec, find_real_adb_servers
from tests.support.android import adb_target, device_path

SHELLS = pytest.mark.parametrize("shell_v2", [True, False], ids=["shell_v2", "legacy"])
#: Workdir bases and file names that a careless `adb shell` join would break or execute.
NASTY = "edge q'x\" $(touch pwned) `touch pwned2`; touch pwned3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_constructing_touches_nothing(tmp_path):
    t = adb_target(adb_path=str(tmp_path / "no-adb"), serial="XYZ", adb_port=1)
    assert t.describe() == "XYZ via adb server 127.0.0.1:1"  # no error until first use
    assert t.default_workdir_base == "/data/local/tmp/edgeq"


@SHELLS
def test_exit_codes_and_streams(phones, shell_v2):
    emu = phones(shell_v2=shell_v2)
    with adb_target(emu) as t:
        assert t.shell_v2 is shell_v2
        script = "echo out; printf 'no newline'; echo err >&2; exit 3"
        res = t.run(["sh", "-c", script], check=False)
        assert (res.exit_code, res.stdout, res.stderr) == (3, "out\nno newline", "err\n")
        assert t.run("exit 0").exit_code == 0
        assert t.run("kill -9 $$", check=False).exit_code != 0
        with pytest.raises(CommandError) as exc:
            t.run(["false"])
        assert exc.value.status == 1 and "exit code 1" in exc.value.message
        with pytest.raises(CommandError) as exc:
            t.run(["sh", "-c", "echo boom >&2; exit 42"])
        assert exc.value.status == 42 and "boom" in exc.value.message


@SHELLS
def test_arguments_survive_the_double_shell_parsing(phones, shell_v2):
    emu = phones(shell_v2=shell_v2)
    evil = f"a  b 'c' \"d\" $(touch /data/local/tmp/pwned) `touch pwned2`; echo x | {NASTY}"
    with adb_target(emu) as t:
        assert t.run(["printf", "%s", evil]).stdout == evil
        assert t.run(["printf", "%s\\n", "", "\t", "*"]).stdout == "\n\t\n*\n"
    assert not list(device_path(emu, "/data/local/tmp").rglob("pwned*"))
    assert not list(Path.cwd().glob("pwned*"))


@SHELLS
def test_workdir_and_cache_with_hostile_names(phones, shell_v2, tmp_path):
    emu = phones(shell_v2=shell_v2)
    base = f"/data/local/tmp/{NASTY}"
    local = tmp_path / "my model's $(x) `y`.tflite"
    local.write_bytes(b"m" * 5000)
    with adb_target(emu, workdir=base) as t:
        wd = t.workdir
        assert wd.startswith(base + "/run.") and device_path(emu, wd).is_dir()
        remote = t.ensure_file(local, ".tflite")
        assert t.bytes_sent == 5000 and device_path(emu, remote).read_bytes() == b"m" * 5000
        assert t.ensure_file(local, ".tflite") == remote and t.bytes_sent == 5000
        t.put(local, f"{wd}/{local.name}")
        assert t.run(["cat", f"{wd}/{local.name}"]).stdout == "m" * 5000
        back = tmp_path / "back"
        t.get(f"{wd}/{local.name}", back)
        assert back.read_bytes() == local.read_bytes()
        with pytest.raises(CommandError, match="no such file on the device"):
            t.get(f"{wd}/missing", tmp_path / "x")
    left = sorted(p.name for p in device_path(emu, base).iterdir())
    assert left == ["edgeq-cache"]  # the per-run folder is gone, the cache stays
    assert not list(device_path(emu, "/data/local/tmp").rglob("pwned*"))


def test_keep_leaves_the_workdir(phones):
    emu = phones()
    with adb_target(emu, keep=True) as t:
        wd = t.workdir
    assert device_path(emu, wd).is_dir()


def test_corrupt_cached_copy_is_replaced(phones, tmp_path):
    emu = phones()
    f = tmp_path / "m.tflite"
    f.write_bytes(b"model-bytes")
    with adb_target(emu) as t:
        remote = t.ensure_file(f, ".tflite")
    device_path(emu, remote).write_bytes(b"garbage")
    with adb_target(emu) as t:
        t.ensure_file(f, ".tflite")
        assert t.bytes_sent == len(b"model-bytes")
    assert device_path(emu, remote).read_bytes() == b"model-bytes"


@SHELLS
def test_timeout_kills_the_device_command(phones, shell_v2):
    emu = phones(shell_v2=shell_v2)
    marker = f"edgeq-adb-timeout-{'v2' if shell_v2 else 'legacy'}-3c9e"
    with adb_target(emu) as t, pytest.raises(CommandTimeout, match="did not finish within"):
        t.run(["sh", "-c", f"sleep 300; echo {marker}"], timeout=1.5, killable=True)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert left.strip() == ""


def test_env_is_exported_on_the_device(phones):
    emu = phones()
    with adb_target(emu, env={"EDGEQ_X": "a b'c"}) as t:
        assert t.run('printf %s "$EDGEQ_X"').stdout == "a b'c"


# --------------------------------------------------------------------------- choosing


def test_serial_picks_one_of_several(phones):
    emu = phones(devices=[DeviceSpec("AAA1"), DeviceSpec("BBB2")])
    with adb_target(emu, serial="BBB2") as t:
        assert t.run(["getprop", "ro.serialno"]).stdout.strip() == "BBB2"
        assert t.describe().startswith("BBB2 via adb server 127.0.0.1:")


def test_android_serial_and_server_port_from_the_environment(phones, monkeypatch):
    emu = phones(devices=[DeviceSpec("AAA1"), DeviceSpec("BBB2")])
    monkeypatch.setenv("ANDROID_SERIAL", "AAA1")
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(emu.port))
    t = adb_target(None, adb_host="")  # neither host nor port: the client's defaults + env
    with t:
        assert t.run(["getprop", "ro.serialno"]).stdout.strip() == "AAA1"
    assert t.describe() == f"AAA1 via adb server localhost:{emu.port}"


# --------------------------------------------------------------------------- errors


def _open_error(target) -> Exception:
    with pytest.raises((ConnectError, AuthError)) as exc:
        target.open()
    assert "\n" not in exc.value.message  # one line
    return exc.value


def test_no_device(phones):
    emu = phones(devices=[])
    err = _open_error(adb_target(emu))
    assert isinstance(err, ConnectError) and "no Android device is attached" in err.message
    assert "USB debugging" in err.message


def test_several_devices_and_no_serial(phones):
    emu = phones(devices=[DeviceSpec("AAA1"), DeviceSpec("BBB2", state="offline")])
    err = _open_error(adb_target(emu))
    assert "2 devices are attached (AAA1 (device), BBB2 (offline))" in err.message
    assert 'serial = "SERIAL"' in err.message and "ANDROID_SERIAL" in err.message


def test_serial_not_attached(phones):
    emu = phones()
    err = _open_error(adb_target(emu, serial="NOPE"))
    assert "device 'NOPE' is not attached" in err.message and "EDGEQ0001 (device)" in err.message


def test_offline(phones):
    emu = phones(state="offline")
    err = _open_error(adb_target(emu))
    assert isinstance(err, ConnectError) and "EDGEQ0001 is offline" in err.message
    assert "adb reconnect offline" in err.message


def test_unauthorized_asks_to_accept_the_rsa_prompt(phones):
    emu = phones(state="unauthorized")
    err = _open_error(adb_target(emu))
    assert isinstance(err, AuthError) and err.exit_code == 3
    assert "accept the RSA key prompt" in err.message


def test_device_going_offline_mid_session(phones):
    emu = phones()
    with adb_target(emu) as t:
        t.run(["true"])
        emu.set_state("EDGEQ0001", "offline")
        with pytest.raises(ConnectError, match="EDGEQ0001 is offline"):
            t.run(["true"])
        with pytest.raises(ConnectError, match="is offline"):
            t.put(Path(__file__), "/data/local/tmp/x")


def test_adb_not_installed(tmp_path):
    err = _open_error(adb_target(None, adb_path=str(tmp_path / "missing" / "adb")))
    assert "was not found" in err.message and "apt-get install adb" in err.message
    assert "platform-tools" in err.message


def test_server_unreachable_and_no_real_server_started(phones):
    phones()  # only for the environment clean-up and the left-over check
    port = _free_port()
    err = _open_error(adb_target(None, adb_port=port))
    assert f"cannot reach the adb server at 127.0.0.1:{port} (Connection refused)" in err.message
    assert find_real_adb_servers(port) == []
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # still nobody listening there


def test_env_names_must_be_shell_names(phones):
    from edgeq.errors import ConfigError

    emu = phones()
    # refused when the config is read, before anything reaches a device shell
    with pytest.raises(ConfigError, match="key 'env': 'A;reboot' is not a shell variable"):
        adb_target(emu, env={"A;reboot": "x"})
