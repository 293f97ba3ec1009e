"""Connection set-up that survives the lab's own storm: handshakes are paced per sshd (a
real sshd that drops everything beyond 6 unauthenticated connections serves 12 devices
opened at once), and a device that failed while the lab crowded its host is set aside and
run again after the others — never quarantined, never recorded as a failure."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from edgeq.config import validate_target
from edgeq.lab import load_inventory, run_lab
from edgeq.lab import scheduler as scheduler_mod
from edgeq.lab.history import History
from edgeq.targets import make_target, pacing
from tests.support import sshd
from tests.support.lab import PI_SSHD, write_inventory


@pytest.fixture()
def strict_sshd(tmp_path):
    """A real sshd that drops every connection beyond 6 still in their handshake."""
    if sshd.available():
        pytest.skip(sshd.available())
    server = sshd.SshServer(tmp_path / "strict", extra_config=PI_SSHD, max_startups="6")
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def four_sshds(tmp_path):
    """Four real sshds (four addresses), stopped afterwards even if one failed to start."""
    if sshd.available():
        pytest.skip(sshd.available())
    servers = []
    try:
        for i in range(4):
            servers.append(sshd.SshServer(tmp_path / f"s{i}", extra_config=PI_SSHD).start())
        yield servers
    finally:
        for s in servers:
            s.stop()


def test_handshakes_to_one_sshd_are_paced(strict_sshd, monkeypatch):
    pacer = pacing.Pacer(3)
    monkeypatch.setattr(pacing, "CONNECTIONS", pacer)
    config = validate_target("pi", strict_sshd.target_values(), "test")
    start = threading.Barrier(12)

    def one(_):
        target = make_target(config)
        start.wait()  # all twelve at the same moment
        with target:
            return target.run("echo ok").stdout.strip()

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(one, range(12)))
    assert answers == ["ok"] * 12  # none dropped by MaxStartups
    assert pacer.peak == 3  # never more than 3 handshakes in flight to that sshd
    assert pacer.waits >= 9  # the others waited their turn
    assert pacer.in_flight() == 0


def test_pacer_bounds_each_key_alone():
    pacer = pacing.Pacer(2)
    inside = {"a": 0, "b": 0}
    most = {"a": 0, "b": 0}
    lock = threading.Lock()
    go = threading.Barrier(8)

    def hold(key):
        go.wait()
        with pacer.slot(key):
            with lock:
                inside[key] += 1
                most[key] = max(most[key], inside[key])
            threading.Event().wait(0.05)
            with lock:
                inside[key] -= 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(hold, ["a", "b"] * 4))
    assert most == {"a": 2, "b": 2}  # each address its own bound, both used at once
    with pacer.slot(None):  # not paced (e.g. the local target)
        assert pacer.in_flight() == 0


def test_a_device_failing_while_the_lab_is_crowded_is_set_aside_not_quarantined(
    tmp_path, pi_python, artifacts, lab_sections, monkeypatch
):
    """retries = 0 and no crowded retries: the first failure is final unless the lab itself
    was crowded (here: any device in flight), then the device runs again after the others."""
    folder, _ = artifacts
    monkeypatch.setattr(scheduler_mod, "CROWDED_PER_CORE", 0)
    late = sshd.SshServer(tmp_path / "late", extra_config=PI_SSHD)  # not up at first
    wrong_key = sshd.keygen(tmp_path / "wrong_key")
    locked_out = sshd.SshServer(tmp_path / "locked", extra_config=PI_SSHD).start()
    wd = tmp_path / "wd"
    wd.mkdir()
    lab_sections["lab"].update(
        models=[str(folder / "model_int8.tflite")], retries=0, crowded_retries=0, backoff_s=0.2
    )
    inv = load_inventory(
        write_inventory(
            tmp_path / "lab.toml",
            lab_sections,
            {
                "late": late.target_values(python=pi_python, workdir=str(wd)),
                "locked-out": locked_out.target_values(key_file=str(wrong_key)),
            },
        )
    )
    set_aside = threading.Event()

    def on_event(ev):  # the device comes up once the lab has set it aside
        if ev.device == "late" and "set aside" in ev.message and not set_aside.is_set():
            set_aside.set()
            late.start()

    try:
        run = run_lab(inv, on_event=on_event)
    finally:
        late.stop()
        locked_out.stop()
    assert set_aside.is_set()
    dev = {d.name: d for d in run.devices}
    assert dev["late"].status == "pass" and dev["late"].deferred == 1
    # an authentication failure is the device's own, crowded or not: quarantined at once
    assert dev["locked-out"].status == "quarantined" and dev["locked-out"].deferred == 0
    history = History(inv.db_path)
    try:
        rows = history.results(device="late")
    finally:
        history.close()
    assert [r["status"] for r in rows] == ["pass"]  # the set-aside attempt left no record


def test_handshakes_are_bounded_over_all_sshds_together(four_sshds, monkeypatch):
    """Four real sshds, three devices each, all twelve opened at once: at most 3 per sshd
    and, over the four, at most 2 handshakes in flight (the lab's connect_total)."""
    per_host, total = pacing.Pacer(3), pacing.Pacer(2)
    monkeypatch.setattr(pacing, "CONNECTIONS", per_host)
    monkeypatch.setattr(pacing, "SETUPS", total)
    configs = [
        validate_target(f"pi{i}", four_sshds[i % 4].target_values(), "test") for i in range(12)
    ]
    start = threading.Barrier(12)

    def one(config):
        target = make_target(config)
        start.wait()
        with target:
            return target.run("echo ok").stdout.strip()

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(one, configs))
    assert answers == ["ok"] * 12
    assert total.peak == 2  # never more than 2 set-ups at once, whichever sshd
    assert total.waits >= 9  # ten had to wait for one of the two slots
    assert per_host.peak <= 3
    assert total.in_flight() == 0 and per_host.in_flight() == 0


def test_the_lab_sets_its_total_bound_from_the_inventory(
    tmp_path, pi_python, artifacts, lab_sections, monkeypatch
):
    folder, _ = artifacts
    monkeypatch.setattr(pacing, "SETUPS", pacing.Pacer(8))
    srv = sshd.SshServer(tmp_path / "one", extra_config=PI_SSHD).start()
    wd = tmp_path / "wd"
    wd.mkdir()
    lab_sections["lab"].update(models=[str(folder / "model_int8.tflite")], connect_total=1)
    try:
        run = run_lab(
            load_inventory(
                write_inventory(
                    tmp_path / "lab.toml",
                    lab_sections,
                    {"pi": srv.target_values(python=pi_python, workdir=str(wd))},
                )
            )
        )
    finally:
        srv.stop()
    assert run.ok
    assert pacing.SETUPS.limit == 1 and pacing.SETUPS.peak == 1


@pytest.mark.parametrize("key", ["connect_total", "health_total"])
def test_lab_wide_bounds_must_be_at_least_one(tmp_path, lab_sections, key):
    from edgeq.errors import UsageError

    lab_sections["lab"].update({key: 0})
    path = write_inventory(tmp_path / "lab.toml", lab_sections, {"pi": {"transport": "local"}})
    with pytest.raises(UsageError, match=key):
        load_inventory(path)


def test_a_holder_past_hold_s_stops_counting():
    """One place, held by a check that hangs (5 s): with hold_s = 0.3 the next one gets in
    once the hung one is 0.3 s old (the first waiter wakes when it stops counting), long
    before the hung one ends."""
    pacer = pacing.Pacer(1, hold_s=0.3)
    holding, release = threading.Event(), threading.Event()
    took = []

    def hang():
        with pacer.slot("k"):
            took.append(time.monotonic())
            holding.set()
            release.wait(5)

    t = threading.Thread(target=hang)
    t.start()
    holding.wait(5)
    with pacer.slot("k"):
        entered = time.monotonic() - took[0]
        assert pacer.in_flight("k") == 2  # the hung one still runs
    release.set()
    t.join(5)
    assert 0.3 <= entered < 2.5
    assert pacer.peak == 1  # never two counted at once
    assert pacer.in_flight() == 0


def test_health_checks_are_bounded_over_the_whole_lab(
    tmp_path, four_sshds, pi_python, artifacts, lab_sections, monkeypatch
):
    """Four devices on four sshds, parallel = 4, health_total = 1: one check at a time."""
    folder, _ = artifacts
    inside, most = [0], [0]
    lock = threading.Lock()
    real_check = scheduler_mod.health_check

    def counted(*a, **k):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            return real_check(*a, **k)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(scheduler_mod, "health_check", counted)
    devices = {}
    for i, srv in enumerate(four_sshds):
        (tmp_path / f"wd{i}").mkdir()
        devices[f"pi{i}"] = srv.target_values(python=pi_python, workdir=str(tmp_path / f"wd{i}"))
    lab_sections["lab"].update(
        models=[str(folder / "model_int8.tflite")], parallel=4, health_total=1
    )
    run = run_lab(load_inventory(write_inventory(tmp_path / "lab.toml", lab_sections, devices)))
    assert run.ok, [r.reason for r in run.results]
    assert len(run.results) == 4
    assert most[0] == 1


def test_a_device_slow_to_answer_tcp_holds_no_handshake_slot(tmp_path, monkeypatch):
    """With one handshake slot for the whole process, a device whose TCP connect takes
    1.5 s (powered off: its SYNs unanswered until the timeout) must not hold up another
    device's handshake: the bound is taken after the TCP connect."""
    from edgeq.targets import _watch

    if sshd.available():
        pytest.skip(sshd.available())
    monkeypatch.setattr(pacing, "SETUPS", pacing.Pacer(1))
    srv = sshd.SshServer(tmp_path / "s", extra_config=PI_SSHD).start()
    real = _watch.WatchedSocket.connect.__func__
    seen = {}

    def connect(cls, host, port, timeout):
        if threading.current_thread().name == "slow":
            seen["slots held while connecting"] = pacing.SETUPS.in_flight()
            threading.Event().wait(1.5)
        return real(cls, host, port, timeout)

    monkeypatch.setattr(_watch.WatchedSocket, "connect", classmethod(connect))
    done = {}

    def open_one(name):
        target = make_target(validate_target(name, srv.target_values(), "test"))
        with target:
            target.run("true")
        done[name] = time.monotonic()

    try:
        slow = threading.Thread(target=open_one, args=("slow",), name="slow")
        slow.start()
        threading.Event().wait(0.2)  # the slow one is in its TCP connect now
        open_one("fast")
        slow.join(30)
    finally:
        srv.stop()
    assert seen["slots held while connecting"] == 0
    assert done["fast"] < done["slow"]  # the fast device's handshake did not wait for it
