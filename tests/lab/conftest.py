"""Lab fixtures: "Pis" (real sshd + the device venv) and a labgrid lab on 127.0.0.1. Helpers
(inventories as TOML, killing a Pi) are in tests/support/lab.py and tests/support/procs.py."""

from __future__ import annotations

import pytest

from tests.support.lab import PI_SSHD


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
    from tests.support import sshd
    from tests.support.adb_device import EmulatedAdbServer, find_real_adb_servers

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
