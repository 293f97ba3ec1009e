"""The ssh target against a real OpenSSH server: commands, files, host keys, errors."""

from __future__ import annotations

import pytest

from edgeq import config
from edgeq.errors import AuthError, CommandError, CommandTimeout, ConnectError, HostKeyError
from edgeq.targets import make_target
from tests.support import sshd


def _target(server, **over):
    return make_target(config.validate_target("pi", server.target_values(**over), "test"))


def test_constructing_does_not_connect(pi_server):
    t = _target(pi_server, port=1)  # nothing listens on port 1
    assert t.describe().endswith("@127.0.0.1:1")  # no error until first use


def test_run_exit_codes_and_streams(pi_server):
    with _target(pi_server) as t:
        res = t.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
        assert (res.exit_code, res.stdout, res.stderr) == (3, "out\n", "err\n")
        with pytest.raises(CommandError) as exc:
            t.run(["false"])
        assert exc.value.status == 1 and "exit code 1" in exc.value.message


def test_arguments_are_quoted_not_interpreted(pi_server, tmp_path):
    evil = f"a b 'c' \"d\" $(touch {tmp_path}/pwned) `touch {tmp_path}/pwned2`; echo x"
    with _target(pi_server) as t:
        assert t.run(["printf", "%s", evil]).stdout == evil
    assert not list(tmp_path.glob("pwned*"))


def test_workdir_lifecycle_and_file_cache(pi_server, pi_workdir, tmp_path):
    f = tmp_path / "blob.bin"
    f.write_bytes(b"x" * 5000)
    t = _target(pi_server, workdir=str(pi_workdir))
    with t:
        wd = t.workdir
        assert wd.startswith(str(pi_workdir)) and (pi_workdir / wd.rsplit("/", 1)[1]).is_dir()
        remote = t.ensure_file(f, ".bin")
        assert t.bytes_sent == 5000
        again = t.ensure_file(f, ".bin")
        assert again == remote and t.bytes_sent == 5000  # same content: nothing sent
        back = tmp_path / "back.bin"
        t.get(remote, back)
        assert back.read_bytes() == f.read_bytes()
    assert sorted(p.name for p in pi_workdir.iterdir()) == ["edgeq-cache"]


def test_corrupt_cached_copy_is_replaced(pi_server, pi_workdir, tmp_path):
    f = tmp_path / "m.tflite"
    f.write_bytes(b"model-bytes")
    with _target(pi_server, workdir=str(pi_workdir)) as t:
        remote = t.ensure_file(f, ".tflite")
    with open(remote, "wb") as fh:  # the "Pi" is this machine: damage its copy
        fh.write(b"garbage")
    with _target(pi_server, workdir=str(pi_workdir)) as t:
        t.ensure_file(f, ".tflite")
        assert t.bytes_sent == len(b"model-bytes")


def test_timeout_kills_the_remote_command(pi_server, pi_workdir):
    import subprocess

    marker = "edgeq-timeout-test-7d1f"
    with _target(pi_server, workdir=str(pi_workdir)) as t, pytest.raises(CommandTimeout):
        t.run(["sh", "-c", f"sleep 300; echo {marker}"], timeout=1.5, killable=True)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert left.strip() == ""


def test_wrong_port(pi_server):
    port = sshd.free_port()
    with pytest.raises(ConnectError, match=f"cannot connect to \\[127.0.0.1\\]:{port}"):
        _target(pi_server, port=port).open()


def test_wrong_key(pi_server, tmp_path):
    other = sshd.keygen(tmp_path / "other_key")
    with pytest.raises(AuthError, match="refused key .*ssh-copy-id"):
        _target(pi_server, key_file=str(other)).open()


def test_missing_key_file(pi_server, tmp_path):
    with pytest.raises(AuthError, match="does not exist"):
        _target(pi_server, key_file=str(tmp_path / "nope")).open()


def test_unknown_host_key_is_refused_with_the_fix(pi_server, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError) as exc:
        _target(pi_server, known_hosts=str(empty)).open()
    msg = exc.value.message
    assert "accept_new_host_key = true" in msg and f"ssh-keyscan -p {pi_server.port}" in msg


def test_accept_new_host_key_records_it(pi_server, tmp_path):
    kh = tmp_path / "kh" / "known_hosts"
    with _target(pi_server, known_hosts=str(kh), accept_new_host_key=True) as t:
        t.run(["true"])
    assert f"[127.0.0.1]:{pi_server.port}" in kh.read_text()
    with _target(pi_server, known_hosts=str(kh)) as t:  # now known: no flag needed
        t.run(["true"])


def test_changed_host_key_is_refused(pi_server, tmp_path):
    other = sshd.keygen(tmp_path / "fake_host_key")
    pub = (tmp_path / "fake_host_key.pub").read_text().split()
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{pi_server.port} {pub[0]} {pub[1]}\n")
    assert other.exists()
    with pytest.raises(HostKeyError, match="does NOT match .*ssh-keygen"):
        _target(pi_server, known_hosts=str(kh)).open()


def test_unresolvable_host(pi_server):
    with pytest.raises(ConnectError, match="could not resolve host"):
        _target(pi_server, host="no-such-host.invalid").open()


def test_probe_reports_the_device_python(pi_server, pi_python, pi_workdir):
    from edgeq.runners.deviceenv import probe

    with _target(pi_server, python=pi_python, workdir=str(pi_workdir)) as t:
        env = probe(t)
    assert env["runtime"] == "tflite-runtime" and env["runtime_version"] == "2.14.0"
    assert env["numpy"].startswith("1.") and env["machine"] == "x86_64"
    assert env["emulated"] is False


def test_one_watchdog_thread_watches_every_connection(pi_server):
    """The silent-link watch (targets/_watch.py) is one thread for all connections: a lab of
    256 devices must not wake 256 threads four times a second."""
    import threading
    import time

    from edgeq.targets._watch import PATROL, TICK_S

    def dogs() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "edgeq-ssh-watchdog"]

    before = PATROL.watching()
    targets = [_target(pi_server).open() for _ in range(4)]
    try:
        assert PATROL.watching() == before + 4
        assert len(dogs()) == 1
        time.sleep(2 * TICK_S)  # each new connection had its first look
        ticks, checks = PATROL.ticks, PATROL.checks
        time.sleep(6 * TICK_S)
        # it keeps looking (about one look per tick, whatever the number of connections)
        assert 2 <= PATROL.ticks - ticks <= 8
        # and a look costs the connections due then, not all of them: here nothing is due
        # for seconds (a ping after 10 s of silence), so at most one look at each
        assert PATROL.checks - checks <= PATROL.watching()
        for t in targets:  # and the connections stay usable
            assert t.run(["echo", "ok"]).stdout == "ok\n"
    finally:
        for t in targets:
            t.close()
    assert PATROL.watching() == before


def test_waiting_for_the_exit_status_after_eof_does_not_spin(pi_server, monkeypatch):
    """sshd sends the end of output when the command closes its stdout and the exit status
    when it has been reaped; on a loaded host that gap grows. After EOF paramiko keeps the
    channel readable for good, so a select-based wait returned at once until the status came
    (a busy loop: ~400 000 selects for a 1 s gap, a full second of the lab's CPU)."""
    import select

    import edgeq.targets.ssh as ssh_module

    calls = []
    real = select.select

    def counting(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(ssh_module.select, "select", counting)
    with _target(pi_server) as t:
        # output, then stdout and stderr closed a second before the exit status
        res = t.run(["sh", "-c", "echo early; exec >&- 2>&-; sleep 1; exit 3"], check=False)
    assert (res.exit_code, res.stdout) == (3, "early\n")
    assert len(calls) <= 10  # one wait per DRAIN_POLL_S at most, not one per spin


def _crowded_server(sshd_factory):
    """A real sshd that refuses every connection beyond one unauthenticated (`MaxStartups
    1:100:1`), with that one held open: the next handshake is dropped before its banner —
    what a crowded exporter host does to a lab's connection storm."""
    import socket
    import time

    server = sshd_factory(max_startups="1:100:1")
    deadline = time.monotonic() + 15
    while True:  # the server's start-up probe may still count as a startup: hold our own
        hold = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        if hold.recv(64).startswith(b"SSH-"):
            return server, hold
        hold.close()
        assert time.monotonic() < deadline, "the crowded sshd never answered"
        time.sleep(0.1)


def test_an_abandoned_handshake_leaves_no_traceback_on_stderr(sshd_factory, tmp_path):
    """paramiko logs a handshake its server dropped ("Error reading SSH protocol banner")
    at ERROR with a traceback from its own thread; a CLI user sees edgeq's one-line error
    (exit 3) and no traceback — paramiko's own lines only with --debug."""
    import subprocess
    import sys

    from tests.support.config import write_config

    server, hold = _crowded_server(sshd_factory)
    cfg = write_config(tmp_path / "edgeq.toml", {"pi": server.target_values()})
    args = ("--target", "pi", "--config", str(cfg), "--json")
    try:
        runs = {
            debug: subprocess.run(
                [sys.executable, "-m", "edgeq.cli.main", *debug, "doctor", *args],
                capture_output=True,
                text=True,
                timeout=120,
            )
            for debug in ((), ("--debug",))
        }
    finally:
        hold.close()
    quiet, loud = runs[()], runs[("--debug",)]
    assert quiet.returncode == 3 and loud.returncode == 3
    assert "SSH handshake" in quiet.stdout and "Error reading SSH protocol banner" in quiet.stdout
    assert "Traceback" not in quiet.stderr and "paramiko" not in quiet.stderr, quiet.stderr
    # the same failure with --debug: paramiko's record and traceback, as paramiko logs them
    assert "Error reading SSH protocol banner" in loud.stderr and "Traceback" in loud.stderr


def test_a_reader_waiting_for_output_wakes_for_a_stop_at_once(pi_server, pi_workdir):
    """A command's reader waits up to seconds for output (fewer wake-ups per device-run);
    a stop request (Ctrl-C, SIGTERM: `interrupts.STOP`) still ends a lab worker's wait at
    once, and the command's own timeout is kept to the fraction of a second."""
    import threading
    import time

    from edgeq import interrupts
    from edgeq.targets.ssh import DRAIN_WAIT_S

    got: dict = {}

    def worker(t) -> None:
        t0 = time.monotonic()
        try:
            t.run(["sleep", "30"], timeout=60, killable=True)
        except BaseException as exc:  # the Interrupted the worker must see
            got["exc"], got["after"] = exc, time.monotonic() - t0

    with _target(pi_server, workdir=str(pi_workdir)) as t:
        th = threading.Thread(target=worker, args=(t,))
        th.start()
        time.sleep(1.0)  # the reader is in its wait by now
        stopped = time.monotonic()
        interrupts.STOP.set()
        th.join(30)
        woke = time.monotonic() - stopped
        interrupts.STOP.clear()
        assert isinstance(got.get("exc"), interrupts.Interrupted), got
        assert woke < DRAIN_WAIT_S / 2, woke  # not after its next scheduled look
        t0 = time.monotonic()
        with pytest.raises(CommandTimeout):
            t.run(["sleep", "30"], timeout=1.0, killable=True)
        assert time.monotonic() - t0 < 1.0 + DRAIN_WAIT_S / 2
