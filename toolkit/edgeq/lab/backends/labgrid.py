"""The `labgrid` backend: the devices are the places of a labgrid coordinator, and a device
is held by acquiring its place (through a reservation), so a lab spans every exporter host
and is shared with the people and CI jobs that use the same places.

    [lab]
    inventory = "labgrid://HOST:PORT?TAG=VALUE&TAG=VALUE"   # the places carrying all tags
    [labgrid]                                               # defaults for every place
    key_file = "~/.ssh/id_lab"                              # (see FIELDS)
    [devices.PLACE]                                         # optional, per place

A place becomes a device through its resources and tags:

* a `NetworkService` → `transport = "ssh"` (address, port and username from the resource);
* a `NetworkService` of the exporter host plus the tag `adb_serial=SERIAL` → `transport =
  "adb+ssh"`: a phone on that host's USB, reached by running its `adb -s SERIAL` over SSH
  (labgrid 26 has no ADB driver).

Holding a place: a local `flock` first (so two edgeq runs on this host queue cheaply and a
crashed one can be told apart); a place that is free (neither acquired nor reserved, and
still carrying the URL's tags) is then acquired at once — one request; otherwise (or if
somebody got there first) a reservation `name=PLACE` + the URL's tags is waited for up to
`lock_timeout_s` (a place acquired by somebody else is never taken: the device is `busy`),
then `acquire`. The scheduler's `finally` hands the place back without waiting: `release`
(+ `cancel-reservation`) go out on the session's loop while the device's thread moves on,
and the run waits for all of them together before it reports. The coordinator serializes
every request under one lock, so a device costs it two requests instead of four or five.
(labgrid 26's coordinator allocates one place per reservation and refuses a reservation
with more than one filter group, so places cannot be reserved in one request.) A
marker file next to the local lock records "acquired by this edgeq run"; a place still
acquired by this host/user with a marker but no live holder was left by a crashed run and
is reported with the command that releases it — never taken over.

A failing health check tags the place `edgeq-health=bad` (visible to everybody in
`labgrid-client places`); later runs skip such places unless `--include-quarantined`, and a
passing check removes the tag.

How edgeq talks to the coordinator: in-process, through labgrid's own client session
(`labgrid.remote.client.ClientSession`, what labgrid's `RemotePlace` uses) and the
coordinator's gRPC messages. One `labgrid-client` process costs ~0.5 s of CPU and ~1.2 s of
wall time here (its imports), and a device needs four or five operations; one session per
run costs that once. Those classes are not a documented API, hence the pin (`labgrid>=26,
<27`, checked on first use) and the one adapter class below (`Coordinator`) that holds every
call into labgrid. The commands printed to users are `labgrid-client` ones.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from ...devicelock import DeviceLock
from ...errors import ConfigError, DeviceError
from ...fields import Field, f
from ..retry import Attempts, RetryPolicy
from . import register
from .base import Backend, BackendUnavailable, DeviceBusy, Lease, OnWait
from .file import FileBackend

DEFAULT_PORT = 20408
#: Requests of one session in flight at the coordinator at once: it serves them one by one
#: under one lock, so more only queue there — where each would count against its timeout.
IN_FLIGHT = 8
INSTALL = "pip install 'edgeq[labgrid]'"
SUPPORTED_MAJOR = "26"
HEALTH_TAG = "edgeq-health"
SERIAL_TAG = "adb_serial"


def parse_url(url: str, where: str) -> tuple[str, dict[str, str]]:
    """`labgrid://HOST[:PORT]?TAG=VALUE&…` → ("HOST:PORT", {TAG: VALUE})."""
    example = "labgrid://HOST:PORT?TAG=VALUE (e.g. labgrid://lab-coord:20408?edgeq=nightly)"
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL" for labgrid://[::1
        raise ConfigError(f"{where}: {url!r} is not a URL ({exc}); write {example}") from None
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ConfigError(f"{where}: {url!r}: the port is not a number; write {example}") from None
    if not parts.hostname or parts.path not in ("", "/") or parts.fragment:
        raise ConfigError(f"{where}: {url!r} is not a labgrid inventory URL; write {example}")
    tags: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if not key or not value or key == HEALTH_TAG:
            raise ConfigError(
                f"{where}: {url!r}: every filter must be TAG=VALUE with both set (and not "
                f"{HEALTH_TAG}, which edgeq manages); write {example}"
            )
        tags[key] = value
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}", tags


def client_command(address: str, *args: str) -> str:
    """The `labgrid-client` command a user runs for one operation (for messages)."""
    return " ".join(["labgrid-client", "-x", address, *args])


class Coordinator:
    """One client session with a labgrid coordinator, on an asyncio loop in a thread of its
    own (the lab's device threads call in concurrently). Every use of labgrid is here."""

    def __init__(
        self, address: str, timeout_s: float, patience_s: float = 300.0, backoff_s: float = 1.0
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        #: how long requests that time out are retried before the run gives up
        self.patience_s = patience_s
        self.backoff_s = backoff_s
        #: set when the run stops (Ctrl-C): no more retries
        self.stopping = threading.Event()
        #: requests that timed out and were sent again (for messages, tests and benchmarks)
        self.retried = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session = None
        self._pb = None
        self._slots: asyncio.Semaphore | None = None
        self._opening = threading.Lock()
        #: releases sent but not yet answered (`release_later`), awaited by `drain`
        self._pending: list[tuple[str, Any]] = []

    # ------------------------------------------------------------------ lifecycle

    def _unavailable(self, why: str) -> BackendUnavailable:
        return BackendUnavailable(
            f"the labgrid coordinator at {self.address} is unreachable ({why}); start it there "
            f"(labgrid-coordinator -l {self.address}) or fix HOST:PORT of the inventory URL"
        )

    def open(self) -> Coordinator:
        with self._opening:
            if self._session is None:
                self._open()
        return self

    def _open(self) -> None:
        os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")  # the lab forks (ssh, adb)
        try:
            import labgrid
            from labgrid.remote.generated import labgrid_coordinator_pb2
        except ImportError:
            raise ConfigError(
                f"a labgrid:// inventory needs labgrid, which is not installed; run: {INSTALL}"
            ) from None
        version = str(getattr(labgrid, "__version__", ""))
        if version.split(".")[0] != SUPPORTED_MAJOR:
            raise ConfigError(
                f"edgeq's labgrid backend works with labgrid {SUPPORTED_MAJOR}.x, found "
                f"{version or 'an unknown version'}; run: {INSTALL}"
            )
        self._pb = labgrid_coordinator_pb2
        host, _, port = self.address.rpartition(":")
        try:  # a plain TCP check first: a clear reason, and no gRPC retry loop
            socket.create_connection((host.strip("[]"), int(port)), self.timeout_s).close()
        except OSError as exc:
            raise self._unavailable(exc.strerror or str(exc) or type(exc).__name__) from None
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="edgeq-labgrid", daemon=True).start()
        self._loop = loop
        try:
            self._session = self._call(self._start())
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            self._loop = None
            raise

    async def _start(self):
        import grpc
        from labgrid.remote.client import ClientSession
        from labgrid.remote.generated import labgrid_coordinator_pb2_grpc

        self._slots = asyncio.Semaphore(IN_FLIGHT)
        session = ClientSession(self.address, asyncio.get_running_loop())
        # The coordinator tells clients apart by their TCP peer, and gRPC shares one
        # connection between the channels of a process: give this session its own (with
        # the keepalive labgrid's client uses), or a second session in the same process —
        # a test, a library user — is refused.
        await session.channel.close()
        session.channel = grpc.aio.insecure_channel(
            self.address,
            options=[
                ("grpc.use_local_subchannel_pool", 1),
                ("grpc.keepalive_time_ms", 7500),
                ("grpc.keepalive_timeout_ms", 10000),
                ("grpc.http2.ping_timeout_ms", 10000),
                ("grpc.http2.max_pings_without_data", 0),
            ],
        )
        session.stub = labgrid_coordinator_pb2_grpc.CoordinatorStub(session.channel)
        await session.start()
        return session

    def close(self) -> None:
        self.drain()
        loop, session = self._loop, self._session
        self._loop = self._session = None
        if loop is None:
            return
        if session is not None:

            async def stop():
                await session.stop()
                await session.close()

            try:
                asyncio.run_coroutine_threadsafe(stop(), loop).result(self.timeout_s)
            except Exception:
                pass
        loop.call_soon_threadsafe(loop.stop)

    @property
    def me(self) -> str:
        """Who the coordinator sees: HOST/USER (labgrid honours LG_HOSTNAME, LG_USERNAME)."""
        if self._session is not None:
            return f"{self._session.gethostname()}/{self._session.getuser()}"
        host = os.environ.get("LG_HOSTNAME", socket.gethostname())
        return f"{host}/{os.environ.get('LG_USERNAME', getpass.getuser())}"

    def _call(self, coro, timeout: float | None = None, bounded: bool = True):
        """Run a coroutine on the session's loop; gRPC errors become edgeq's. `bounded`:
        the whole coroutine has `timeout` (else it bounds itself, as `_rpc` does)."""
        import grpc

        if self._loop is None:
            coro.close()
            raise self._unavailable("the session is closed")
        if bounded:
            coro = asyncio.wait_for(coro, timeout or self.timeout_s)
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result()
        except grpc.aio.AioRpcError as exc:
            raise self._rpc_error(exc) from None
        except (TimeoutError, asyncio.TimeoutError):
            raise CoordinatorSlow(
                f"the labgrid coordinator at {self.address} did not answer within "
                f"{timeout or self.timeout_s:g} s"
            ) from None
        except Exception as exc:
            if type(exc).__name__ == "ServerError":  # labgrid's: the stream could not start
                raise self._unavailable(str(exc)) from None
            raise

    def _rpc_error(self, exc) -> DeviceError:
        """edgeq's error for a gRPC one: a deadline is the coordinator's load (retried), an
        unreachable one stops the run, anything else is a refusal (`_RpcError`)."""
        import grpc

        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return CoordinatorSlow(
                f"the labgrid coordinator at {self.address} did not answer in time "
                f"({exc.details() or exc.code().name})"
            )
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            return self._unavailable(exc.details() or exc.code().name)
        return _RpcError(exc.code().name, exc.details() or "")

    def _patience(self) -> RetryPolicy:
        """Requests that time out are sent again with backoff, up to `patience_s` in all: a
        coordinator slow under the lab's own load (or briefly stopped) is not a device's
        failure, and no reason to stop the run."""
        return RetryPolicy(
            retries=1_000_000,  # bounded by the deadline
            backoff_s=self.backoff_s,
            deadline=time.monotonic() + self.patience_s,
            stop=self.stopping,
        )

    def _gave_up(self, name: str, attempts: Attempts, t0: float, place: str = "") -> Exception:
        last = attempts.errors[-1] if attempts.errors else None
        if not isinstance(last, CoordinatorSlow):
            return last  # type: ignore[return-value]
        fix = (
            f"; its last {name} may still be carried out: if place {place} then shows as "
            f"acquired by {self.me}, release it: "
            f"{client_command(self.address, '-p', place, 'release')}"
            if name == "AcquirePlace" and place
            else ""
        )
        return BackendUnavailable(
            f"the labgrid coordinator at {self.address} did not answer {name} within "
            f"{self.timeout_s:g} s in {attempts.count} attempts over "
            f"{time.monotonic() - t0:.0f} s (patience_s = {self.patience_s:g}): it is "
            f"overloaded or stopped; check it, or raise timeout_s / patience_s in [labgrid]{fix}"
        )

    async def _rpc(self, name: str, request):
        """One request, once one of the IN_FLIGHT slots is free; `timeout_s` runs from when
        it is sent (a wait for a slot is this run's own queue, not an unreachable
        coordinator). No sync round trip after it: nothing here reads its own change back
        at once (the mirror of places catches up from the coordinator's stream), and the
        coordinator serializes acquisitions, so every round trip saved shortens the queue."""
        assert self._slots is not None
        async with self._slots:
            call = getattr(self._live().stub, name)(request)
            return await asyncio.wait_for(call, self.timeout_s)

    def _request(self, name: str, request, settled=None, place: str = ""):
        """One request, sent again while it times out (`_patience`). `settled()`: after a
        timed-out attempt, whether a refusal of the next one means the first was carried
        out after all (e.g. "already acquired" — by us): then it counts as done."""
        attempts = Attempts()
        t0 = time.monotonic()

        def once():
            try:
                return self._call(self._rpc(name, request), bounded=False)
            except _RpcError:
                if attempts.count and settled is not None and settled():
                    return None
                raise

        def count(_exc, _n, _wait) -> None:
            with self._opening:
                self.retried += 1

        try:
            return self._patience().call(once, on_retry=count, attempts=attempts)
        except CoordinatorSlow:
            raise self._gave_up(name, attempts, t0, place) from None

    def _live(self):
        session = self._session
        if session is None or session.stopping.is_set():
            raise self._unavailable("the connection was lost")
        return session

    @staticmethod
    def _plain(place, resources: list | None) -> dict[str, Any]:
        out = {
            "name": place.name,
            "tags": dict(place.tags),
            "acquired": place.acquired,
            "reservation": place.reservation,
            "changed": place.changed,
        }
        if resources is not None:  # the resources it matches (only discover needs them)
            out["resources"] = [
                {
                    "path": f"{exporter}/{group}/{entry.cls}/{name}",
                    "cls": entry.cls,
                    "params": dict(entry.params),
                    "avail": bool(entry.avail),
                }
                for exporter, group, name, entry in resources
                if place.hasmatch((exporter, group, entry.cls, name))
            ]
        return out

    def places(self) -> dict[str, dict[str, Any]]:
        """Every place, as plain data, with the resources it matches."""

        async def snapshot():
            session = self._live()
            resources = [
                (exporter, group, name, entry)
                for exporter, groups in session.resources.items()
                for group, entries in groups.items()
                for name, entry in entries.items()
                if entry.data.get("cls")
            ]
            return {n: self._plain(p, resources) for n, p in session.places.items()}

        return self._call(snapshot())

    def place(self, name: str) -> dict[str, Any] | None:
        """One place's tags and holder (cheap: no resource matching)."""

        async def one():
            place = self._live().places.get(name)
            return None if place is None else self._plain(place, None)

        return self._call(one())

    # ------------------------------------------------------------------ changing

    def reserve(self, filters: dict[str, str]) -> tuple[str, str]:
        """A reservation for a place matching `filters` → (token, state)."""
        pb = self._pb
        request = pb.CreateReservationRequest(
            filters={"main": pb.Reservation.Filter(filter=filters)}, prio=0.0
        )
        res = self._request("CreateReservation", request).reservation
        return res.token, _state(res)

    def poll(self, token: str) -> str:
        res = self._request(
            "PollReservation", self._pb.PollReservationRequest(token=token)
        ).reservation
        return _state(res)

    def cancel(self, token: str) -> None:
        request = self._pb.CancelReservationRequest(token=token)
        # "does not exist" after a timed-out attempt: that attempt cancelled it
        self._request("CancelReservation", request, settled=lambda: True)

    def acquire(self, place: str) -> None:
        def ours() -> bool:  # an earlier, timed-out attempt took it after all?
            until = time.monotonic() + self.timeout_s
            while True:  # the mirror follows the coordinator's stream: give it a moment
                info = self.place(place)
                if info is not None and info["acquired"] == self.me:
                    return True
                if time.monotonic() >= until:
                    return False
                time.sleep(0.1)

        request = self._pb.AcquirePlaceRequest(placename=place)
        self._request("AcquirePlace", request, settled=ours, place=place)

    def release(self, place: str) -> None:
        """Release `place` only if we hold it (the coordinator checks `fromuser`)."""
        request = self._pb.ReleasePlaceRequest(placename=place, fromuser=self.me)
        self._request("ReleasePlace", request)

    def release_later(self, place: str, token: str | None, done: Any = None) -> None:
        """Release `place` (and cancel its reservation) without waiting for the answer:
        the releases of a run travel together while its devices go on; `drain()` (at the
        latest `close()`) waits for them. `done(error_message_or_None)` runs when answered."""
        import grpc

        pb = self._pb

        async def patiently(name: str, request, settled: bool = False) -> None:
            """`_request` on the loop: timed-out attempts are sent again (ReleasePlace with
            `fromuser` is idempotent; a reservation that no longer exists after a timed-out
            cancel was cancelled by it)."""
            attempts = Attempts()

            async def once() -> None:
                try:
                    await self._rpc(name, request)
                except (TimeoutError, asyncio.TimeoutError):
                    raise CoordinatorSlow(f"no answer within {self.timeout_s:g} s") from None
                except grpc.aio.AioRpcError as exc:
                    error = self._rpc_error(exc)
                    if not (attempts.count and settled and isinstance(error, _RpcError)):
                        raise error from None

            def count(_exc, _n, _wait) -> None:
                self.retried += 1  # on the loop's thread only

            await self._patience().call_async(once, on_retry=count, attempts=attempts)

        async def release() -> None:
            try:
                request = pb.ReleasePlaceRequest(placename=place, fromuser=self.me)
                await patiently("ReleasePlace", request)
                if token:
                    cancel = pb.CancelReservationRequest(token=token)
                    await patiently("CancelReservation", cancel, settled=True)
            except CoordinatorSlow:
                if done:
                    done(f"no answer within {self.timeout_s:g} s for {self.patience_s:g} s")
                return
            except DeviceError as exc:
                if done:
                    done(exc.message)
                return
            if done:
                done(None)

        if self._loop is None:
            if done:
                done("the session is closed")
            return
        fut = asyncio.run_coroutine_threadsafe(release(), self._loop)
        with self._opening:
            self._pending.append((place, fut))

    def drain(self) -> list[str]:
        """Wait for every release sent by `release_later`; the places whose release got no
        answer (the coordinator went away, or it timed out)."""
        with self._opening:
            pending, self._pending = self._pending, []
        lost = []
        # each request has its own timeout; this only guards against a wedged loop
        until = (
            time.monotonic() + self.patience_s + self.timeout_s * (2 * len(pending) / IN_FLIGHT + 2)
        )
        for place, fut in pending:
            try:
                fut.result(max(until - time.monotonic(), 0.1))
            except Exception:
                lost.append(place)
        return lost

    def set_tags(self, place: str, tags: dict[str, str]) -> None:
        """Set tags (an empty value deletes one)."""
        request = self._pb.SetPlaceTagsRequest(placename=place, tags=tags)
        self._request("SetPlaceTags", request)


class CoordinatorSlow(BackendUnavailable):
    """A coordinator request that got no answer in time: the coordinator is crowded (by this
    lab's own requests, or others') or briefly stopped. Sent again with backoff (`_patience`);
    only when that runs out does it become a plain BackendUnavailable and stop the run."""

    transient = True


class _RpcError(DeviceError):
    """The coordinator refused a request (its status code and message)."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}", details={"grpc_status": code})
        self.code = code


def _state(reservation) -> str:
    from labgrid.remote.common import ReservationState

    return ReservationState(reservation.state).name


@register
class LabgridBackend(Backend):
    scheme = "labgrid"
    table = "labgrid"
    fields: ClassVar[dict[str, Field]] = {
        "key_file": f(str, "", "SSH private key for every place (default: ssh-agent, ~/.ssh)"),
        "known_hosts": f(str, "~/.ssh/known_hosts", "known_hosts file used to verify the hosts"),
        "accept_new_host_key": f(bool, False, "trust and record a host key seen the first time"),
        "user": f(str, "", "login user when a NetworkService names none (default: yours)"),
        "python": f(str, "python3", "the device python on every Pi"),
        "adb_path": f(str, "adb", "the adb client on the exporter hosts (phones)"),
        "timeout_s": f(
            (int, float), 10, "seconds to wait for the coordinator", minimum=0, exclusive=True
        ),
        "patience_s": f(
            (int, float),
            300,
            "seconds to keep sending a coordinator request that times out (with backoff) "
            "before the run stops",
            minimum=0,
            exclusive=True,
        ),
        "poll_s": f(
            (int, float),
            0.5,
            "seconds between looks at a reservation while a place is busy",
            minimum=0,
            exclusive=True,
        ),
    }
    lock_dir = FileBackend.lock_dir

    def __init__(self, url, settings, lab, folder, where) -> None:
        super().__init__(url, settings, lab, folder, where)
        self.address, self.tags = parse_url(url, where)
        self.coordinator = Coordinator(
            self.address,
            float(settings.get("timeout_s") or 10),
            patience_s=float(settings.get("patience_s") or 300),
            backoff_s=min(float(lab.get("backoff_s") or 1), 1.0),
        )
        self._notices: list[str] = []
        self._lock = threading.Lock()
        self._leases: set[PlaceLease] = set()
        self.interrupted = threading.Event()

    # ------------------------------------------------------------------ inventory

    def _path(self, value: str) -> str:
        if not value:
            return ""
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else self.folder / p)

    def discover(self) -> dict[str, dict[str, Any]]:
        try:
            return self._discover()
        except BaseException:
            self.close()  # no run follows to close the session
            raise

    def _discover(self) -> dict[str, dict[str, Any]]:
        places = self.coordinator.open().places()
        chosen = {
            n: p
            for n, p in sorted(places.items())
            if all(p["tags"].get(k) == v for k, v in self.tags.items())
        }
        if not chosen:
            wanted = "&".join(f"{k}={v}" for k, v in self.tags.items()) or "(any)"
            raise ConfigError(
                f"{self.url}: no place of the coordinator at {self.address} carries the tags "
                f"{wanted} (places there: {', '.join(sorted(places)) or 'none'}); tag one: "
                f"{client_command(self.address, '-p', 'PLACE', 'set-tags', 'KEY=VALUE')}"
            )
        devices = {}
        for name, place in chosen.items():
            table = self._device_table(place)
            if table is not None:
                devices[name] = table
        return devices

    def _device_table(self, place: dict[str, Any]) -> dict[str, Any] | None:
        name = place["name"]
        services = [r for r in place["resources"] if r["cls"] == "NetworkService"]
        if not services:
            self.notice(
                f"place {name} has no NetworkService resource, so edgeq cannot reach it and "
                f"skips it; see {client_command(self.address, '-p', name, 'show')}"
            )
            return None
        if len(services) > 1:
            self.notice(
                f"place {name} matches {len(services)} NetworkService resources; edgeq uses "
                f"{services[0]['path']}"
            )
        params = services[0]["params"]
        s = self.settings
        table: dict[str, Any] = {
            "host": str(params.get("address") or ""),
            "port": int(params.get("port") or 22),
            "user": str(params.get("username") or s["user"] or ""),
            "known_hosts": self._path(s["known_hosts"]),
            "accept_new_host_key": s["accept_new_host_key"],
            "python": s["python"],
            "tags": sorted(f"{k}={v}" for k, v in place["tags"].items() if k != HEALTH_TAG),
            "lock_key": f"labgrid://{self.address}/{name}",
            "description": f"labgrid place {name} ({services[0]['path']})",
        }
        if s["key_file"]:
            table["key_file"] = self._path(s["key_file"])
        serial = place["tags"].get(SERIAL_TAG)
        if serial:
            table.update(transport="adb+ssh", serial=serial, adb_path=s["adb_path"])
        else:
            table["transport"] = "ssh"
        return table

    # ------------------------------------------------------------------ the scheduler's

    @staticmethod
    def place_of(device) -> str:
        return device.lock_key.rsplit("/", 1)[-1] if device.lock_key else device.name

    def lease(self, device, owner: dict[str, Any], timeout_s: float) -> Lease:
        return PlaceLease(self, device, owner, timeout_s)

    def skip_reason(self, device) -> str | None:
        if self.include_quarantined:
            return None
        name = self.place_of(device)
        place = self.coordinator.open().place(name)
        if place is None:
            return f"place {name} no longer exists on the coordinator at {self.address}"
        if place["tags"].get(HEALTH_TAG) == "bad":
            return (
                f"place {name} is tagged {HEALTH_TAG}=bad by an earlier health check (its "
                f"reason is in the history); fix the device, then run with "
                f"--include-quarantined (a passing check clears the tag)"
            )
        return None

    def mark_health(self, device, ok: bool, reason: str) -> None:
        name = self.place_of(device)
        try:
            place = self.coordinator.place(name) or {"tags": {}}
            bad = place["tags"].get(HEALTH_TAG) == "bad"
            if ok and HEALTH_TAG in place["tags"]:
                self.coordinator.set_tags(name, {HEALTH_TAG: ""})
            elif not ok and not bad:
                self.coordinator.set_tags(name, {HEALTH_TAG: "bad"})
        except DeviceError as exc:
            self.notice(f"could not update the {HEALTH_TAG} tag of place {name}: {exc.message}")

    def notice(self, line: str) -> None:
        with self._lock:
            if line not in self._notices:
                self._notices.append(line)

    def notices(self) -> list[str]:
        """What to tell the user; first waits for the releases still on their way."""
        if self.coordinator._loop is not None:
            for place in self.coordinator.drain():
                cmd = client_command(self.address, "-p", place, "release")
                self.notice(f"could not release place {place} (no answer in time); run: {cmd}")
        with self._lock:
            return list(self._notices)

    def interrupt(self) -> None:
        self.interrupted.set()
        self.coordinator.stopping.set()

    def close(self) -> None:
        self.interrupted.set()
        with self._lock:
            leftover = list(self._leases)
        for lease in leftover:  # normally none: each is released by the scheduler's finally
            lease.release()
        self.coordinator.close()


class PlaceLease(Lease):
    """A labgrid place held for one device: local flock → reservation → acquire."""

    def __init__(self, backend: LabgridBackend, device, owner: dict[str, Any], timeout_s: float):
        self.backend = backend
        self.place = backend.place_of(device)
        self.owner = owner
        self.timeout_s = timeout_s
        self.local = DeviceLock(
            device.lock_key or f"labgrid://{backend.address}/{self.place}",
            backend.lock_dir,
            timeout_s,
            owner=owner,
        )
        self.marker = self.local.path.with_suffix(".acquired")
        self.token: str | None = None
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def _command(self, *args: str) -> str:
        return client_command(self.backend.address, "-p", self.place, *args)

    def acquire(self, on_wait: OnWait | None = None) -> PlaceLease:
        t0 = time.monotonic()
        self.local.acquire(on_wait)  # another edgeq run on this host: wait for it here
        try:
            self._take(on_wait, t0 + self.timeout_s)
        except BaseException:
            self.local.release()
            raise
        self.waited_s = time.monotonic() - t0
        self._held = True
        with self.backend._lock:
            self.backend._leases.add(self)
        return self

    def _stale(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.marker.read_text() or "{}")
        except (OSError, ValueError):
            return None

    def _take(self, on_wait: OnWait | None, deadline: float) -> None:
        co = self.backend.coordinator.open()
        info = co.place(self.place)
        if info is None:
            raise DeviceError(
                f"place {self.place} no longer exists on the coordinator at {co.address}; "
                f"check {client_command(co.address, 'places')}"
            )
        stale = self._stale()
        if stale is not None and info["acquired"] == co.me:
            # We hold the local lock, so no live edgeq run on this host has the place.
            line = (
                f"place {self.place} is still acquired by {co.me} for edgeq run "
                f"{stale.get('run_id', '?')} (pid {stale.get('pid', '?')}, since "
                f"{stale.get('since', '?')}), which ended without releasing it; edgeq does not "
                f"take it over — release it: {self._command('release')}"
            )
            self.backend.notice(line)
            raise DeviceBusy(line, holder={"acquired": info["acquired"], **stale})
        if stale is not None:
            self.marker.unlink(missing_ok=True)  # released since (by hand): nothing to report
        if self._free(info):
            try:  # free now: one request, no reservation to make, poll and cancel
                co.acquire(self.place)
            except _RpcError:
                pass  # somebody got there first: queue for it with a reservation below
            else:
                self._mark(co, None)
                return
        token, state = co.reserve({"name": self.place, **self.backend.tags})
        try:
            told = False
            while state != "allocated":
                if state in ("expired", "invalid"):
                    raise DeviceError(
                        f"the reservation for place {self.place} became {state} on the "
                        f"coordinator at {co.address}; try again"
                    )
                now = time.monotonic()
                info = co.place(self.place) or {}
                holder = info.get("acquired") or "a reservation of somebody else"
                if now >= deadline or self.backend.interrupted.is_set():
                    raise DeviceBusy(
                        f"place {self.place} is busy: held by {holder}; waited "
                        f"{now - deadline + self.timeout_s:.0f} s — raise lock_timeout_s in "
                        f"[lab] or try again later (see {client_command(co.address, 'who')})",
                        holder={"acquired": info.get("acquired"), "place": self.place},
                    )
                if on_wait and not told:
                    on_wait(f"waiting for place {self.place} (held by {holder})")
                    told = True
                time.sleep(min(float(self.backend.settings["poll_s"]), max(deadline - now, 0)))
                state = co.poll(token)
            try:
                co.acquire(self.place)
            except _RpcError as exc:
                raise DeviceError(
                    f"the coordinator at {co.address} refused to acquire place {self.place} "
                    f"({exc.message}): is its exporter running, or its resource held through "
                    f"another place? See {self._command('show')}",
                    details=exc.details,
                ) from None
        except BaseException:
            try:
                co.cancel(token)
            except Exception:
                pass
            raise
        self._mark(co, token)

    def _free(self, info: dict[str, Any]) -> bool:
        """Neither acquired nor reserved by anybody, and still carrying the URL's tags."""
        tags = info.get("tags") or {}
        return (
            not info.get("acquired")
            and not info.get("reservation")
            and all(tags.get(k) == v for k, v in self.backend.tags.items())
        )

    def _mark(self, co: Coordinator, token: str | None) -> None:
        """Held: remember the reservation, and write the marker of this run's acquisition."""
        self.token = token
        self.marker.write_text(
            json.dumps(
                {
                    **self.owner,
                    "place": self.place,
                    "coordinator": co.address,
                    "acquired_by": co.me,
                    "pid": os.getpid(),
                    "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
            + "\n"
        )

    def release(self) -> None:
        """Hand the place back without waiting for the coordinator's answer (the run's
        releases travel together; `close()` waits for them); the marker goes when the
        release is confirmed, so a crash in between is still told apart."""
        if not self._held:
            return
        self._held = False
        with self.backend._lock:
            self.backend._leases.discard(self)
        marker, place, command = self.marker, self.place, self._command("release")

        def done(error: str | None) -> None:
            if error is None:
                marker.unlink(missing_ok=True)
            else:
                self.backend.notice(
                    f"could not release place {place} ({error}); release it: {command}"
                )

        try:
            self.backend.coordinator.release_later(place, self.token, done)
        finally:
            self.token = None
            self.local.release()
