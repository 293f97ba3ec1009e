"""The emulated adb server, driven by the REAL adb client (``adb -P PORT ...``).

Every adb call names the emulator's private port (``-P`` and ANDROID_ADB_SERVER_PORT) and
runs with HOME in a temporary folder, so the client never reaches or starts a server on
5037 and never touches ~/.android.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.adb_device import (
    DEFAULT_SERIAL,
    DeviceSpec,
    EmulatedAdbServer,
    find_real_adb_servers,
    pid_alive,
)

ADB = shutil.which("adb")
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(ADB is None, reason="needs the adb client (apt-get install adb)")

#: Every port an emulator of this module listened on: none may keep a real adb server.
PORTS_USED: set[int] = set()

UNAUTHORIZED = (
    "error: device unauthorized.\n"
    "This adb server's $ADB_VENDOR_KEYS is not set\n"
    "Try 'adb kill-server' if that seems wrong.\n"
    "Otherwise check for a confirmation dialog on your device.\n"
)


class Phone:
    """An emulated server plus a runner for the real client."""

    def __init__(self, emu: EmulatedAdbServer, home: Path) -> None:
        self.emu = emu
        self.home = home

    @property
    def port(self) -> int:
        return self.emu.port

    def base_env(self) -> dict[str, str]:
        # A real server started by the client would log to ANDROID_ADB_LOG_PATH.
        log_path = str(self.home / "adb.log")
        return {**os.environ, "HOME": str(self.home), "ANDROID_ADB_LOG_PATH": log_path}

    def env(self) -> dict[str, str]:
        return self.emu.adb_env(self.base_env())

    def adb(self, *args: str, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        return self.emu.adb(*args, timeout=timeout, env=self.base_env(), **kw)

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen([ADB, "-P", str(self.port), *args], env=self.env(), **kw)

    @property
    def root(self) -> Path:
        return self.emu.device().root

    @property
    def mode(self) -> str:
        """The isolation in use: namespace, proot or none (EDGEQ_ADB_EMU_ISOLATION)."""
        return self.emu.device_isolation(self.emu.devices[0])

    def isolated(self) -> bool:
        return self.mode != "none"


def _start(tmp: Path, **kw) -> Phone:
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    emu = EmulatedAdbServer(tmp / "phone", **kw).start()
    PORTS_USED.add(emu.port)
    return Phone(emu, home)


def _stop(phone: Phone) -> None:
    phone.emu.stop()
    assert find_real_adb_servers(phone.port) == []


@pytest.fixture(scope="module")
def phone(tmp_path_factory: pytest.TempPathFactory):
    """One modern device (shell v2, stat v2) shared by the read-mostly tests."""
    p = _start(tmp_path_factory.mktemp("modern"))
    yield p
    _stop(p)


@pytest.fixture()
def make_phone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Factory for a fresh emulator with the given switches; stopped at teardown."""
    monkeypatch.delenv("ADB_VENDOR_KEYS", raising=False)
    started: list[Phone] = []

    def make(**kw) -> Phone:
        p = _start(tmp_path / f"emu{len(started)}", **kw)
        started.append(p)
        return p

    yield make
    for p in started:
        _stop(p)


def needs_isolation(p: Phone) -> None:
    if not p.isolated():
        pytest.skip("device paths inside shell commands need isolation (root + unshare)")


#: Known limits of Debian 12's proot 5.1.0 (isolation=proot is opt-in; see the README).
PROOT_LIMITS = (
    "proot 5.1.0: no statx, no read-only binds, signal deaths exit 255, waits for background jobs"
)


# -- host services ---------------------------------------------------------------------


def test_devices_lists_the_device(phone: Phone) -> None:
    r = phone.adb("devices")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"List of devices attached\n{DEFAULT_SERIAL}\tdevice\n\n"
    assert "daemon" not in r.stderr  # the client did not start a server of its own


def test_devices_long_listing(phone: Phone) -> None:
    r = phone.adb("devices", "-l")
    assert r.returncode == 0
    line = r.stdout.splitlines()[1]
    assert re.fullmatch(
        rf"{DEFAULT_SERIAL} +device product:edgeq_arm64 model:EdgeQ_Emulated_Phone "
        r"device:edgeq_arm64 transport_id:1",
        line,
    ), line


def test_get_state_and_serialno(phone: Phone) -> None:
    assert phone.adb("get-state").stdout == "device\n"
    assert phone.adb("get-serialno").stdout == f"{DEFAULT_SERIAL}\n"
    assert phone.adb("-s", DEFAULT_SERIAL, "get-state").stdout == "device\n"


def test_unknown_serial_is_refused(phone: Phone) -> None:
    r = phone.adb("-s", "nope", "shell", "true")
    assert r.returncode == 1
    assert r.stderr == "error: device 'nope' not found\n"


def _raw(port: int, *requests: str) -> bytes:
    """Send smart-socket requests on one connection; return everything until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for req in requests:
            s.sendall(b"%04x%s" % (len(req), req.encode()))
        # No half-close: to a device service, EOF means "the client is gone".
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_raw_protocol_facts(phone: Phone) -> None:
    # host:version: OKAY + hex4 length + hex4 version (41), then the server closes.
    assert _raw(phone.port, "host:version") == b"OKAY00040029"
    assert _raw(phone.port, "host:nonsense") == b"FAIL0014unknown host service"
    # host:tport answers OKAY + the u64 LE transport id; legacy host:transport only OKAY.
    tport = _raw(phone.port, "host:tport:any", "shell:echo raw")
    assert tport == b"OKAY" + struct.pack("<Q", 1) + b"OKAYraw\n"
    legacy = _raw(phone.port, f"host:transport:{DEFAULT_SERIAL}", "shell,v2,raw:echo v2")
    assert (
        legacy
        == (b"OKAYOKAY" + b"\x01" + struct.pack("<I", 3) + b"v2\n" + b"\x03" + struct.pack("<I", 1))
        + b"\x00"
    )
    assert _raw(phone.port, "host-serial:EDGEQ0001:features").startswith(b"OKAY")


def test_client_requests_are_recorded(phone: Phone) -> None:
    phone.adb("shell", "true")
    reqs = phone.emu.requests
    assert "host:version" in reqs
    assert "host:features" in reqs
    assert "host:tport:any" in reqs
    assert any(r.startswith("shell,v2,") and r.endswith("raw:true") for r in reqs)


# -- shell (v2) --------------------------------------------------------------------------


def test_shell_echo(phone: Phone) -> None:
    r = phone.adb("shell", "echo", "hi")
    assert (r.returncode, r.stdout, r.stderr) == (0, "hi\n", "")


def test_shell_exit_status(phone: Phone) -> None:
    assert phone.adb("shell", "exit 7").returncode == 7
    assert phone.adb("shell", "false").returncode == 1
    if phone.mode != "proot":
        assert phone.adb("shell", "kill -9 $$").returncode == 128 + 9


def test_shell_stderr_is_separate(phone: Phone) -> None:
    r = phone.adb("shell", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")


def test_shell_reparses_the_joined_argv(phone: Phone) -> None:
    # adb joins argv with spaces; the device's shell parses the string again.
    assert phone.adb("shell", "printf", "%s,", "a b").stdout == "a,b,"
    assert phone.adb("shell", "printf", "%s,", "'a b'").stdout == "a b,"
    assert phone.adb("shell", "echo", "'a  b'").stdout == "a  b\n"
    assert phone.adb("shell", "echo", "a;", "echo", "b").stdout == "a\nb\n"
    assert phone.adb("shell", "echo", "$ANDROID_DATA").stdout == "/data\n"  # device's env


def test_shell_stdin_is_forwarded(phone: Phone) -> None:
    r = phone.adb("shell", "tr a-z A-Z", input="hello\n")
    assert (r.returncode, r.stdout) == (0, "HELLO\n")


def test_shell_sees_the_sandbox_at_device_paths(phone: Phone) -> None:
    needs_isolation(phone)
    (phone.root / "data/local/tmp/from_host.txt").write_text("written on the host\n")
    r = phone.adb(
        "shell", "cat /data/local/tmp/from_host.txt && echo made > /data/local/tmp/from_dev"
    )
    assert (r.returncode, r.stdout) == (0, "written on the host\n"), r.stderr
    assert (phone.root / "data/local/tmp/from_dev").read_text() == "made\n"
    # coreutils `ls` uses statx: it must work on the bound paths too.
    if phone.mode != "proot":
        r = phone.adb("shell", "ls -l /data/local/tmp/from_host.txt")
        assert r.returncode == 0 and "from_host.txt" in r.stdout, r.stderr
    # /system is read-only, as on a phone (proot cannot bind read-only).
    if phone.mode != "proot":
        r = phone.adb("shell", "touch /system/x")
        assert r.returncode != 0 and "Read-only file system" in r.stderr


def test_shell_environment(phone: Phone) -> None:
    needs_isolation(phone)
    r = phone.adb("shell", 'pwd; echo "$TMPDIR"; getprop ro.product.cpu.abi; getprop ro.x dflt')
    assert r.stdout.splitlines() == ["/", "/data/local/tmp", "arm64-v8a", "dflt"]
    r = phone.adb("shell", 'python3 -c "import numpy, sys; print(numpy.__name__)"')
    assert (r.returncode, r.stdout) == (0, "numpy\n"), r.stderr
    assert "[ro.build.version.sdk]: [33]" in phone.adb("shell", "getprop").stdout


def test_exec_out_is_binary_safe(phone: Phone) -> None:
    blob = bytes(range(256)) * 40
    (phone.root / "data/local/tmp/blob.bin").write_bytes(blob)
    path = "/data/local/tmp/blob.bin" if phone.isolated() else "data/local/tmp/blob.bin"
    r = phone.adb("exec-out", f"cat {path}", text=False)
    assert r.returncode == 0 and r.stdout == blob
    # Unlike `adb shell`, exec-out quotes every argument after the first.
    assert phone.adb("exec-out", "printf", "%s,", "a b").stdout == "a b,"
    assert phone.emu.requests[-1] == "exec:printf '%s,' 'a b'"


def test_killing_the_client_kills_the_command(phone: Phone) -> None:
    proc = phone.popen("shell", "echo $$; exec sleep 60", stdout=subprocess.PIPE, text=True)
    try:
        pid = int(proc.stdout.readline())
        assert pid_alive(pid)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid), "the device command outlived its adb client"


def test_background_job_does_not_block_and_is_killed_at_stop(make_phone) -> None:
    p = make_phone()
    if p.mode == "proot":
        pytest.skip(PROOT_LIMITS)
    t0 = time.monotonic()
    r = p.adb("shell", "sleep 60 >/dev/null 2>&1 </dev/null & echo $!")
    assert r.returncode == 0 and time.monotonic() - t0 < 10
    pid = int(r.stdout)
    assert pid_alive(pid)  # like on a phone, it outlives `adb shell`
    p.emu.stop()
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)


# -- sync ----------------------------------------------------------------------------------


def test_push_pull_roundtrip(phone: Phone, tmp_path: Path) -> None:
    data = os.urandom(200 * 1024)
    src = tmp_path / "random.bin"
    src.write_bytes(data)
    r = phone.adb("push", str(src), "/data/local/tmp/random.bin")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (phone.root / "data/local/tmp/random.bin").read_bytes() == data
    back = tmp_path / "back.bin"
    r = phone.adb("pull", "/data/local/tmp/random.bin", str(back))
    assert r.returncode == 0, r.stdout + r.stderr
    assert back.read_bytes() == data


def test_push_creates_missing_directories(phone: Phone, tmp_path: Path) -> None:
    src = tmp_path / "model.tflite"
    src.write_bytes(b"\x00tflite")
    r = phone.adb("push", str(src), "/data/local/tmp/new/dir/model.tflite")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (phone.root / "data/local/tmp/new/dir/model.tflite").read_bytes() == b"\x00tflite"
    # Pushing into an existing directory appends the file name.
    r = phone.adb("push", str(src), "/data/local/tmp/new/")
    assert r.returncode == 0
    assert (phone.root / "data/local/tmp/new/model.tflite").is_file()


def test_push_directory_and_list(phone: Phone, tmp_path: Path) -> None:
    tree = tmp_path / "bundle"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a")
    (tree / "sub/b.txt").write_text("b")
    r = phone.adb("push", str(tree), "/data/local/tmp/bundle")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (phone.root / "data/local/tmp/bundle/sub/b.txt").read_text() == "b"
    listing = phone.adb("ls", "/data/local/tmp/bundle").stdout
    assert {line.split()[-1] for line in listing.splitlines()} >= {"a.txt", "sub"}


def test_pull_missing_file_fails_cleanly(phone: Phone, tmp_path: Path) -> None:
    r = phone.adb("pull", "/data/local/tmp/does-not-exist", str(tmp_path / "x"))
    assert r.returncode == 1
    assert (
        "adb: error: failed to stat remote object '/data/local/tmp/does-not-exist': "
        "No such file or directory" in r.stdout + r.stderr
    )
    assert not (tmp_path / "x").exists()


def test_push_to_read_only_system_fails(phone: Phone, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_text("x")
    r = phone.adb("push", str(src), "/system/f")
    assert r.returncode == 1
    assert "remote couldn't create file: Read-only file system" in r.stdout + r.stderr


def test_symlinks_resolve_in_the_device_view(phone: Phone, tmp_path: Path) -> None:
    needs_isolation(phone)
    assert phone.adb("shell", "echo linked > /data/local/tmp/target.txt").returncode == 0
    link = "ln -sf /data/local/tmp/target.txt /data/local/tmp/link.txt"
    assert phone.adb("shell", link).returncode == 0
    r = phone.adb("pull", "/data/local/tmp/link.txt", str(tmp_path / "l"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "l").read_text() == "linked\n"


# -- switches --------------------------------------------------------------------------


def test_legacy_device_loses_exit_status_and_merges_stderr(make_phone, tmp_path: Path) -> None:
    p = make_phone(shell_v2=False)
    assert p.adb("shell", "exit 7").returncode == 0
    r = p.adb("shell", "echo out; echo err >&2")
    assert (r.returncode, r.stderr) == (0, "")
    assert sorted(r.stdout.splitlines()) == ["err", "out"]
    assert any(r.startswith("shell:echo out") for r in p.emu.requests)
    # sync falls back to STAT v1 (no stat_v2 feature).
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(70_000))
    assert p.adb("push", str(src), "/data/local/tmp/d/f.bin").returncode == 0
    assert p.adb("pull", "/data/local/tmp/d/f.bin", str(tmp_path / "g.bin")).returncode == 0
    assert (tmp_path / "g.bin").read_bytes() == src.read_bytes()
    r = p.adb("pull", "/data/local/tmp/nope", str(tmp_path / "n"))
    assert r.returncode == 1
    assert "remote object '/data/local/tmp/nope' does not exist" in r.stdout + r.stderr


def test_offline_device(make_phone) -> None:
    p = make_phone(state="offline")
    assert p.adb("devices").stdout == f"List of devices attached\n{DEFAULT_SERIAL}\toffline\n\n"
    r = p.adb("shell", "true")
    assert (r.returncode, r.stderr) == (1, "error: device offline\n")
    r = p.adb("get-state")
    assert (r.returncode, r.stderr) == (1, "error: device offline\n")


def test_unauthorized_device(make_phone, tmp_path: Path) -> None:
    p = make_phone(state="unauthorized")
    assert "\tunauthorized\n" in p.adb("devices").stdout
    r = p.adb("shell", "true")
    assert (r.returncode, r.stderr) == (1, UNAUTHORIZED)
    r = p.adb("push", __file__, "/data/local/tmp/")
    assert r.returncode == 1
    assert "failed to get feature set: device unauthorized." in r.stdout + r.stderr


def test_state_changes_while_serving(make_phone) -> None:
    p = make_phone(state="offline")
    waiter = p.popen("wait-for-device", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.3)
        assert waiter.poll() is None  # still waiting for an online device
        p.emu.set_state(DEFAULT_SERIAL, "device")
        assert waiter.wait(timeout=10) == 0
    finally:
        waiter.kill()
        waiter.communicate()
    assert p.adb("shell", "echo", "up").stdout == "up\n"


def test_two_devices(make_phone) -> None:
    p = make_phone(devices=[DeviceSpec("EDGEQ0001"), DeviceSpec("EDGEQ0002")])
    r = p.adb("devices")
    assert r.stdout == "List of devices attached\nEDGEQ0001\tdevice\nEDGEQ0002\tdevice\n\n"
    r = p.adb("shell", "true")
    assert (r.returncode, r.stderr) == (1, "error: more than one device/emulator\n")
    r = p.adb("get-serialno")
    assert (r.returncode, r.stderr) == (1, "error: more than one device/emulator\n")
    # Each device has its own sandbox root.
    for serial in ("EDGEQ0001", "EDGEQ0002"):
        dev = p.emu.device(serial)
        assert dev.root == p.emu.root / serial
        (dev.root / "data/local/tmp/who").write_text(serial)
    path = "/data/local/tmp/who" if p.isolated() else "data/local/tmp/who"
    for serial in ("EDGEQ0001", "EDGEQ0002"):
        r = p.adb("-s", serial, "shell", "cat", path)
        assert (r.returncode, r.stdout) == (0, serial), r.stderr
    assert p.adb("-t", "2", "shell", "getprop ro.serialno").stdout == "EDGEQ0002\n"


def test_no_devices(make_phone) -> None:
    p = make_phone(devices=[])
    assert p.adb("devices").stdout == "List of devices attached\n\n"
    r = p.adb("shell", "true")
    assert (r.returncode, r.stderr) == (1, "error: no devices/emulators found\n")


def test_kill_server_keeps_the_emulator_serving(make_phone) -> None:
    p = make_phone()
    assert p.adb("kill-server").returncode == 0
    assert p.emu.kill_requests == 1
    r = p.adb("devices")
    assert r.returncode == 0 and f"{DEFAULT_SERIAL}\tdevice" in r.stdout
    assert "daemon" not in r.stderr
    assert find_real_adb_servers(p.port) == []


def test_version_mismatch_real_server_is_cleaned_up(make_phone) -> None:
    # A client that dislikes the version kills the server and starts a real one on the port.
    p = make_phone(version=40, exit_on_kill=True)
    r = p.adb("devices")
    assert "adb server version (40) doesn't match this client (41); killing..." in r.stderr
    assert p.emu.wait_killed(5)
    assert "adb starting" in (p.home / "adb.log").read_text()  # a real server did start
    p.emu.stop()  # must also remove the real server the client started
    assert find_real_adb_servers(p.port) == []


def test_command_line_entry_point(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.adb_device",
            "--root",
            str(tmp_path / "phones"),
            "--port",
            "0",
            "--devices",
            "2",
            "--no-shell-v2",
            "--serial",
            "emulator-5554",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert m, line
        port = m.group(1)
        PORTS_USED.add(int(port))
        env = {
            **os.environ,
            "HOME": str(home),
            "ANDROID_ADB_SERVER_PORT": port,
            "ANDROID_ADB_LOG_PATH": str(home / "adb.log"),
        }
        env.pop("ADB_SERVER_SOCKET", None)
        env.pop("ANDROID_SERIAL", None)

        def adb(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [ADB, "-P", port, *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                stdin=subprocess.DEVNULL,
            )

        out = adb("devices").stdout
        assert out == "List of devices attached\nemulator-5554\tdevice\nemulator-5556\tdevice\n\n"
        r = adb("-s", "emulator-5556", "shell", "echo hi; exit 3")
        assert (r.returncode, r.stdout) == (0, "hi\n")  # legacy: exit status lost
        assert (tmp_path / "phones/emulator-5556/data/local/tmp").is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        finally:
            proc.kill()
            proc.stdout.close()
    assert proc.returncode == 0


def test_zz_no_real_adb_server_left_behind() -> None:
    assert PORTS_USED, "the tests above did not run"
    for port in sorted(PORTS_USED):
        assert find_real_adb_servers(port) == [], f"a real adb server was left on port {port}"
