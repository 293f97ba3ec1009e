"""Lab fixtures: inventories written as TOML, "Pis" (real sshd + the device venv), and a
way to kill a Pi the hard way (its sshd and every session under it)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import GENEROUS, LIGHT_RUN  # noqa: F401 (used by the lab tests)

#: The test sshd serves root, whose ~/.bashrc on this host runs `pyenv init` (~0.2 s of CPU
#: per command). A Pi's shell does not; SHLVL=1 makes bash skip the rc file, as on a Pi.
PI_SSHD = "SetEnv SHLVL=1"


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v))


def write_inventory(path: Path, sections: dict[str, dict], devices: dict[str, dict]) -> Path:
    """lab.toml from {section: {key: value}} and {device: {key: value}}."""
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        lines.append("")
    for name, values in devices.items():
        lines.append(f"[devices.{json.dumps(name)}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (by parent pid, from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def kill_device(server) -> None:
    """Pull the plug: SIGKILL the sshd, its sessions and whatever runs in them."""
    for p in descendants(server.proc.pid):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.proc.wait(timeout=10)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (to prove nothing was left)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(cmd)
    return found


def wait_until(cond, timeout: float = 10.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


@pytest.fixture(scope="session")
def pi_factory(sshd_factory, pi_python, tmp_path_factory):
    """Start a "Pi" (real sshd + the device venv); returns (server, [devices.NAME] keys)."""

    def make(**over):
        server = sshd_factory(extra_config=PI_SSHD)
        workdir = tmp_path_factory.mktemp("pi-wd")
        values = server.target_values(python=pi_python, workdir=str(workdir))
        values.update(over)
        return server, values

    return make


# --------------------------------------------------------------------------- labgrid


@pytest.fixture(scope="session")
def labgrid_rig(tmp_path_factory, sshd_factory, pi_python):
    """A labgrid lab on 127.0.0.1, shared by the labgrid tests: a coordinator, exporter
    `host-a` (one Pi) and exporter `host-b` (more Pis and the host of the emulated phone),
    and places made with labgrid-client, tagged `suite=...` per test scenario.

    Every sshd accepts one key and is listed in one known_hosts file, so the [labgrid]
    table's defaults reach every place, as in a real lab."""
    from tests.support import labgrid as lg

    why = lg.available()
    if why:
        pytest.skip(why)
    from tests.emulators.adb_device import EmulatedAdbServer, find_real_adb_servers
    from tests.support import sshd

    root = tmp_path_factory.mktemp("labgrid")
    key = sshd.keygen(root / "lab_key")
    known = root / "known_hosts"
    servers = {}
    for name in ("pi-1", "pi-2", "pi-busy", "pi-down", "phone-host"):
        srv = sshd_factory(extra_config=PI_SSHD)
        srv.authorized_keys.write_text((root / "lab_key.pub").read_text())
        servers[name] = srv
    known.write_text("".join(s.known_hosts.read_text() for s in servers.values()))
    # labgrid's tag values are lower-case words: the phone's serial is one
    phone = None
    if lg.shutil.which("adb"):
        phone = EmulatedAdbServer(root / "phone", serial="edgeq_phone1").start()

    import getpass

    def service(name):
        return {"address": "127.0.0.1", "port": servers[name].port, "username": getpass.getuser()}

    lab = lg.Lab(root / "coordinator").start()
    try:
        # exporters start while the places are made (a match is only a pattern)
        lab.exporter("host-a", {"pi-1": service("pi-1")}, wait=False)
        lab.exporter("host-b", {n: service(n) for n in servers if n != "pi-1"}, wait=False)
        places = {
            "pi-a": ("host-a/pi-1/NetworkService", {"suite": "pair"}),
            "pi-b": ("host-b/pi-2/NetworkService", {"suite": "pair"}),
            "bare": (None, {"suite": "pair"}),  # no resource yet: edgeq cannot reach it
            "held": ("host-b/pi-busy/NetworkService", {"suite": "busy"}),
            "flaky": ("host-b/pi-down/NetworkService", {"suite": "down"}),
        }
        if phone:
            places["phone"] = (
                "host-b/phone-host/NetworkService",
                {"suite": "phone", "adb_serial": "edgeq_phone1"},
            )
        lab.make_places(places)
        lab.wait_for_resources()
        yield {
            "lab": lab,
            "servers": servers,
            "phone": phone,
            "labgrid": {"key_file": str(key), "known_hosts": str(known), "python": pi_python},
        }
    finally:
        lab.stop()
        if phone:
            phone.stop()
            assert find_real_adb_servers(phone.port) == []
