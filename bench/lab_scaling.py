"""Orchestration scaling of `edgeq lab run`: wall time for 8 devices vs 1 device.

Each "device" is a real OpenSSH server on 127.0.0.1 running the real device runner in the
test Pi venv (tflite-runtime 2.14, numpy<2), as in the lab tests. The runner setting is
light (20 timed runs, no minimum time, 2 warm-ups, latency only) so that what is measured
is the lab's orchestration — health check, lock, push-by-hash, run, pull, judge, history —
not the model. Repetitions are interleaved (1, 2, 4, 8, 8 serial, 1, ...) so that other load
on the machine hits every configuration alike; the table gives the median.

Caveat: here every "device" runs on the host's own cores (sshd, shell, python startup of
the runner), so device-side CPU competes with the orchestration; on a real lab it runs on
the devices. The CPU columns show how much of the wall time that explains.

Fleet mode (`--fleet 8,64`): the same N "Pis" driven through the file inventory and through
labgrid (a real labgrid-coordinator and two labgrid-exporters on 127.0.0.1; every device a
place), interleaved. Per configuration it reports the lab host's own CPU per device-run
(the CPU time of every thread of this process — scheduler, SSH, history, labgrid session —
from getrusage(RUSAGE_SELF), not wall time; its child processes apart), what a fixed unit
of work cost in the lab process meanwhile (`CostProbe`), the coordinator's and exporters'
CPU, the devices' CPU (every sshd and what ran under it, from their /proc/PID/stat), and
the wall time divided by the device-side floor (device CPU ÷ cores); for labgrid also the
time each device spent in reserve + acquire + release (median, 90th percentile, max).

CPU time per unit of work grows with the machine's load (system calls, context switches
and cache misses cost more when a few hundred processes share 2 cores), so the lab's CPU
per device-run at N = 256 against N = 8 says as much about when N = 8 ran as about the
lab. Beside it, counts that do not depend on the load, from `perf stat` over each
configuration (`PerfStat`: every thread of the lab process but the cost probe's, threads
started later included): instructions retired, system calls entered, context switches —
per device-run, against the reference. This VM exposes no PMU ("PMU not available due to
virtualization, using software events only"): instructions show "-" here, system calls
and context switches are counted; without perf every such column shows "-". The smallest
N runs again after the biggest (the "N after" rows), and the reference of every "vs ref"
column is the median of those runs (before and after), so it is not one point taken at
one moment of the machine's load; the table says which runs it is.

`--shared-sshd K`: the N devices are served by K sshd processes (N/K each, with OpenSSH's
default `MaxStartups 10:30:100`), as the phones on one exporter host share its sshd.
`--runs R`: the light runner's timed runs (default 20; fewer if the device side cannot fit
the machine — the table says which). `--profile`: after the measured repetitions, one more
run per configuration under cProfile (every thread the lab starts; the silent-link patrol,
started by the warm-up, is not among them), its total calls per device-run — a count the
load does not change — and its top entries by own time per device-run (the profiled run is
not in the table: cProfile slows what it watches).

`--ref-reps K` (default 3): the smallest N runs K times before and K times after the
others; its reference is the median of those 2K runs (a run of 8 devices is short, and its
CPU per device-run carries the run's fixed costs over only 8: one run is a noisy reference).
`--devices-idle`: every emulated device (its sshd and all under it) runs SCHED_IDLE, so it
gets only the CPU the lab leaves, as a real device, which has its own.

Measured 2026-12-05 02:04–02:13 UTC (`--fleet 8,64,128,256 --reps 1`, load 1–40; "ref":
the median of six N = 8 runs, 37.3 ms and 1 672 system calls per device-run for file,
46.8 ms and 2 008 for labgrid):

      N backend measured w/floor  CPU/run vs ref syscalls (futex) vs ref coord s lease med/max s
      8 file         8/8   1.89×  37.2 ms  1.00×      1 686 (582)  1.01×       -     0.006/0.021
      8 labgrid      8/8   1.65×  45.6 ms  0.97×      2 000 (692)  1.00×    0.07     0.035/0.058
     64 file       64/64   1.15×  36.9 ms  0.99×      1 981 (978)  1.18×       -     0.004/0.086
     64 labgrid    64/64   1.11×  42.0 ms  0.90×    2 230 (1 095)  1.11×    0.69     0.271/0.364
    128 file     128/128   1.15×  39.3 ms  1.05×      1 902 (911)  1.14×       -     0.004/0.121
    128 labgrid  128/128   1.18×  46.9 ms  1.00×    2 341 (1 229)  1.17×    1.59     1.056/1.294
    256 file     256/256   1.10×  38.7 ms  1.04×    2 035 (1 044)  1.22×       -     0.004/0.057
    256 labgrid  256/256   1.17×  46.4 ms  0.99×    2 498 (1 403)  1.24×    2.87     0.818/1.311
8 after file         8/8   1.81×  39.8 ms  1.07×      1 657 (560)  0.99×       -     0.006/0.017
8 after labgrid      8/8   1.43×  54.5 ms  1.16×      2 015 (772)  1.00×    0.08     0.044/0.081

A second run of the file inventory (`--fleet 8,256 --backends file --reps 1`, load 0–35):
41.0 ms per device-run at N = 256 against a 39.5 ms reference, 1.04×; and of labgrid
(`--backends labgrid`, load 11–35): 54.3 ms against 59.8 ms, 0.91×. Before the lab
bounded its SSH handshakes (`connect_total`) and health checks (`health_total`) over all
addresses, N = 256 cost 60–81 ms per device-run and 5 400–6 800 futex calls (threads
queueing for the GIL); with the bounds but pacing waiters that looked twice a second,
47–49 ms (1.11–1.25×) and 1 450–1 600; see docs/lab-multi-host.md, "Measured".

128 devices on 8 sshd (`--fleet 128 --shared-sshd 8 --parallel 128 --reps 1`, load 20–38):
128/128 measured in both backends, wall/floor 1.10× file, 1.16× labgrid, lab CPU 44.6 /
51.2 ms per device-run, labgrid leases median 0.36 s (max 0.66 s), coordinator CPU 1.41 s.

Run from the repository root (needs root for the test sshd, like the tests):

    .venv/bin/python bench/lab_scaling.py                 # 8 vs 1, 5 repetitions
    .venv/bin/python bench/lab_scaling.py --devices 8 --reps 5 --model path/to/model.tflite
    .venv/bin/python bench/lab_scaling.py --fleet 8,64 --reps 2   # file vs labgrid
    .venv/bin/python bench/lab_scaling.py --fleet 128 --shared-sshd 8 --parallel 128 --reps 1
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LIGHT_RUN = {"runs": 20, "min_s": 0.0, "warmup_runs": 2, "warmup_min_s": 0.0}
GENEROUS = {"max_model_kb": 500, "max_latency_ms": 1000, "min_accuracy": 0.0}


def system_cpu_s() -> float:
    """CPU seconds used by the whole machine so far (all cores, user + system)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def quick_model(data_dir: Path) -> Path:
    """The test model (1 epoch on the small fixture, int8), trained once and cached."""
    from edgeq import prepare

    recipe = {
        "dataset": "mnist",
        "epochs": 1,
        "batch_size": 64,
        "seed": 0,
        "width": 1.0,
        "learning_rate": 1e-3,
        "lr_schedule": "constant",
        "augment": False,
        "mode": "int8",
        "calibration_samples": 200,
    }
    return prepare.prepare_artifact(recipe, data_dir, lambda m: print(f"  {m}", file=sys.stderr))


def inventory(path: Path, devices: dict[str, dict], parallel: int, db: Path, locks: Path, model):
    from tests.support.lab import write_inventory

    sections = {
        "lab": {
            "models": [str(model)],
            "accuracy": False,
            "parallel": parallel,
            "db": str(db),
            "lock_dir": str(locks),
            "retries": 0,
            "timeout_s": 300,
        },
        "run": LIGHT_RUN,
        "budget": GENEROUS,
        # 8 "devices" sharing the host's cores measure noise, not the model: judging their
        # latencies against each other's history would only flag the benchmark's own load.
        "regression": {"metrics": []},
    }
    return write_inventory(path, sections, devices)


def proc_cpu_s(pid: int, children: bool = True) -> float:
    """CPU seconds of one process (plus its waited-for descendants), from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(v) for v in fields[11 : 15 if children else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


def lab_cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    """CPU seconds of every thread of this process, the lab's (RUSAGE_SELF: the threads'
    own CPU time, user + system, ended threads included; RUSAGE_CHILDREN: its waited-for
    children, shown apart)."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


class CostProbe:
    """What a fixed piece of work costs in thread CPU time in the lab process while a run
    goes on: Python bytecode, 20 round trips of 4 KiB over a socketpair, a SHA-256 of
    256 KiB. If every instruction cost more on a machine loaded by N emulated devices, the
    lab's CPU per device-run would grow with N for that reason alone; this probe tells.
    Measured 2026-12-04: it costs the same at N = 64 as at N = 8 (485–516 µs at load 4–58),
    while the lab's blocking system calls on loopback TCP (`recv`, `send`, `select`) cost
    2.5–3.5× more each at N = 64 — kernel work billed to whichever thread is in the kernel
    (loopback delivery, context switches among a few hundred runnable processes), which
    only fewer such calls reduce. "work vs first" divides the lab's CPU per device-run by
    this probe's cost (its own CPU is subtracted from the lab's)."""

    def __init__(self, every_s: float = 0.5) -> None:
        import hashlib
        import socket
        import threading

        self.every_s = every_s
        self.samples: list[float] = []
        self.own_s = 0.0
        self._stop = threading.Event()
        self._pair = socket.socketpair()
        self._blob = bytes(256 * 1024)
        self._sha = hashlib.sha256
        self._thread = threading.Thread(target=self._run, name="bench-cost-probe", daemon=True)

    def unit(self) -> float:
        """One unit of work; its thread CPU seconds."""
        a, b = self._pair
        buf = b"x" * 4096
        t0 = time.thread_time()
        x = 0
        for i in range(5000):
            x += i * i
        for _ in range(20):
            a.sendall(buf)
            got = 0
            while got < len(buf):
                got += len(b.recv(65536))
        self._sha(self._blob).digest()
        return time.thread_time() - t0

    def _run(self) -> None:
        t0 = time.thread_time()
        while not self._stop.wait(self.every_s):
            self.samples.append(self.unit())
        self.own_s = time.thread_time() - t0

    def __enter__(self) -> CostProbe:
        self._thread.start()
        self.tid = self._thread.native_id
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self._pair:
            sock.close()

    @property
    def cost_us(self) -> float:
        return statistics.median(self.samples) * 1e6 if self.samples else float("nan")


class PerfStat:
    """Load-robust counts of the lab process's work over one configuration, from `perf stat`:
    instructions retired (user + kernel), system calls entered and context switches, of
    every thread of this process except `exclude` (the cost probe's) — attached to the
    threads alive at the start and, inherited, every thread they start (the lab's workers,
    SSH transports; checked: threads started after attaching are counted). Counting starts
    and stops through perf's control FIFO (`--control`, `--delay -1`), so the window is the
    run's. A count perf cannot give (no `perf`, or — as on this VM, whose hypervisor exposes
    no PMU — `instructions` "<not supported>") is None and the table shows "-"."""

    EVENTS = (
        "instructions",
        "raw_syscalls:sys_enter",
        "syscalls:sys_enter_futex",
        "context-switches",
    )

    def __init__(self, exclude: tuple[int, ...] = ()) -> None:
        self.exclude = set(exclude)
        self.counts: dict[str, float | None] = dict.fromkeys(self.EVENTS)
        self.why = ""
        self._proc = None

    def _command(self, tmp: Path, ctl: Path, ack: Path) -> list[str]:
        tids = sorted(int(t) for t in os.listdir("/proc/self/task") if int(t) not in self.exclude)
        return [
            "perf", "stat", "-x,", "-o", str(tmp / "out"), "-e", ",".join(self.EVENTS),
            "--control", f"fifo:{ctl},{ack}", "--delay", "-1",
            "-t", ",".join(map(str, tids)),
        ]  # fmt: skip

    def _send(self, word: str, proc=None) -> bool:
        """Send a control word; True once perf acknowledged it (False: perf ended, or no
        answer within 20 s)."""
        import select

        proc = proc or self._proc
        os.write(self._ctl, word.encode() + b"\n")
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._ack], [], [], 0.1)
            if ready:
                return b"ack" in os.read(self._ack, 64)
            if proc.poll() is not None:
                return False
        return False

    def __enter__(self) -> PerfStat:
        import shutil
        import subprocess

        if shutil.which("perf") is None:
            self.why = "no perf"
            return self
        self._tmp = Path(tempfile.mkdtemp(prefix="edgeq-bench-perf-"))
        ctl, ack = self._tmp / "ctl", self._tmp / "ack"
        os.mkfifo(ctl)
        os.mkfifo(ack)
        # O_RDWR: opening a FIFO so never blocks, whether or not perf ever opens it
        self._ctl, self._ack = os.open(ctl, os.O_RDWR), os.open(ack, os.O_RDWR)
        # a thread listed may end before perf attaches to it (after a big run, hundreds of
        # SSH threads end within seconds): list them again and retry a while
        for attempt in range(20):
            if attempt:
                time.sleep(0.25)
            proc = subprocess.Popen(
                self._command(self._tmp, ctl, ack),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            # perf answers "ack" once it has attached; if it failed, it has exited
            if self._send("enable", proc):
                self._proc, self.why = proc, ""
                return self
            proc.kill()
            self.why = proc.communicate()[1].decode(errors="replace").strip()[-200:]
        return self

    def __exit__(self, *exc) -> None:
        import signal

        if self._proc is None:
            return
        self._send("disable")
        self._proc.send_signal(signal.SIGINT)
        self._proc.wait()
        for fd in (self._ctl, self._ack):
            os.close(fd)
        for line in (self._tmp / "out").read_text().splitlines():
            parts = line.split(",")
            if len(parts) > 2 and parts[2] in self.counts:
                try:
                    self.counts[parts[2]] = float(parts[0])
                except ValueError:  # "<not supported>", "<not counted>"
                    pass


class LeaseClock:
    """Times every lease's acquire + release (wrapping the backend's leases)."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def wrap(self, backend) -> None:
        original = backend.lease
        clock = self

        def lease(device, owner, timeout_s):
            inner = original(device, owner, timeout_s)
            spent = [0.0]
            acquire, release = inner.acquire, inner.release

            def timed_acquire(on_wait=None):
                t0 = time.perf_counter()
                try:
                    return acquire(on_wait)
                finally:
                    spent[0] += time.perf_counter() - t0

            def timed_release():
                t0 = time.perf_counter()
                try:
                    release()
                finally:
                    spent[0] += time.perf_counter() - t0
                    clock.samples.append(spent[0])

            inner.acquire, inner.release = timed_acquire, timed_release
            return inner

        backend.lease = lease


class ThreadProfile:
    """cProfile (on each thread's CPU clock) in every thread started while it is on (the
    lab's workers, the labgrid session's loop), merged: where the lab's own CPU goes."""

    def __init__(self) -> None:
        self.profiles: list = []
        self.threads: list = []

    def __enter__(self) -> ThreadProfile:
        import cProfile
        import threading

        def start(frame, event, arg):  # first event of a new thread: profile it from here
            prof = cProfile.Profile(time.thread_time)  # CPU time, not time spent waiting
            self.profiles.append(prof)
            self.threads.append(threading.current_thread())
            sys.setprofile(None)
            prof.enable()

        main = cProfile.Profile(time.thread_time)
        self.profiles.append(main)
        threading.setprofile(start)
        main.enable()
        return self

    def __exit__(self, *exc) -> None:
        import threading

        threading.setprofile(None)
        self.profiles[0].disable()
        # a thread still inside a call (an idle SSH transport thread in recv: it ends within
        # 5 s of its close) would have that call closed on the reading thread's CPU clock —
        # a meaningless own time: wait for the run's threads to end first
        deadline = time.monotonic() + 15
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def top(self, per: int, count: int = 12, dump: Path | None = None) -> list[str]:
        """The `count` functions with the most own time, in ms per device-run (`per`);
        `dump`: also save the merged statistics there (for `python -m pstats`)."""
        import pstats

        stats = None
        for prof in self.profiles:
            try:
                prof.create_stats()
            except Exception:
                continue
            if stats is None:
                stats = pstats.Stats(prof)
            else:
                stats.add(prof)
        if stats is None:
            return []
        if dump is not None:
            dump.parent.mkdir(parents=True, exist_ok=True)  # --profile-dir may not exist yet
            stats.dump_stats(dump)
        rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:count]
        calls_all = sum(v[1] for v in stats.stats.values())
        own_all = sum(v[2] for v in stats.stats.values())
        # the number of calls does not depend on the machine's load, as CPU time does
        out = [
            f"in all: {calls_all / per:.0f} calls, {own_all / per * 1000:.1f} ms own time "
            f"per device-run (cProfile's own cost included)"
        ]
        for (path, line, name), (_cc, calls, own, cum, _callers) in rows:
            where = f"{Path(path).name}:{line}" if line else path
            out.append(
                f"{own / per * 1000:8.2f} ms own {cum / per * 1000:9.2f} ms cum "
                f"{calls / per:9.1f} calls  {name} ({where})"
            )
        return out


def fleet(args) -> int:
    """file vs labgrid for each N of --fleet (see the module docstring)."""
    import getpass

    from edgeq.lab import load_inventory, run_lab
    from tests.support import labgrid as lg
    from tests.support import sshd
    from tests.support.device_venv import PI_PACKAGES, ensure_venv
    from tests.support.lab import PI_SSHD

    why = sshd.available() or lg.available()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    from edgeq.targets import sshquiet

    sshquiet.quiet_logs()  # as the CLI: a dropped handshake is the lab's line, no traceback
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
    os.environ.setdefault("EDGEQ_CACHE_DIR", str(Path(tempfile.gettempdir()) / "edgeq-bench"))
    sizes = sorted({int(n) for n in args.fleet.split(",")})
    biggest = sizes[-1]
    light = {**LIGHT_RUN, "runs": args.runs}
    shared = args.shared_sshd or 0
    print(f"preparing: device venv, model, {shared or biggest} servers, labgrid", file=sys.stderr)
    pi_python = str(ensure_venv(PI_PACKAGES, "pi-venv"))
    model = args.model or quick_model(REPO / "tests" / "fixtures")
    root = Path(tempfile.mkdtemp(prefix="edgeq-lab-fleet-"))
    key = sshd.keygen(root / "lab_key")
    servers: list = []
    lab = None
    samples: dict[tuple[int, str], list[dict]] = {}
    leases: dict[tuple[int, str], list[float]] = {}
    try:
        for i in range(shared or biggest):
            srv = sshd.SshServer(
                root / f"sshd{i}",
                extra_config=PI_SSHD,
                **({"max_startups": "10:30:100"} if shared else {}),  # OpenSSH's default
            ).start()
            srv.authorized_keys.write_text((root / "lab_key.pub").read_text())
            if args.devices_idle:
                # every process this sshd starts (sessions, shells, runners) inherits it
                os.sched_setscheduler(srv.proc.pid, os.SCHED_IDLE, os.sched_param(0))
            servers.append(srv)
        #: device i is served by sshd i (or, shared, by sshd i mod K)
        serving = [servers[i % len(servers)] for i in range(biggest)]
        # each "device" its own folder, as each Pi has its own /tmp: sharing one would make
        # every device list (and judge) the run folders of all the others
        workdirs = []
        for i in range(biggest):
            (root / f"wd{i}").mkdir()
            workdirs.append(str(root / f"wd{i}"))
        known = root / "known_hosts"
        known.write_text("".join(s.known_hosts.read_text() for s in servers))
        # the coordinator and two exporter "hosts" holding half of the Pis each
        lab = lg.Lab(root / "coordinator")
        groups = {
            f"pi{i}": ("host-a" if i % 2 == 0 else "host-b", srv) for i, srv in enumerate(serving)
        }
        lab.preload_places(
            {
                name: (
                    f"{host}/{name}/NetworkService",
                    {f"n{n}": "yes" for n in sizes if int(name[2:]) < n},
                )
                for name, (host, _) in groups.items()
            }
        )
        lab.start()
        for host in ("host-a", "host-b"):
            services = {
                name: {"address": "127.0.0.1", "port": srv.port, "username": getpass.getuser()}
                for name, (h, srv) in groups.items()
                if h == host
            }
            lab.exporter(host, services)
        infra = [lab.proc.pid, *(e.proc.pid for e in lab.exporters)]
        keys = {"key_file": str(key), "known_hosts": str(known), "python": pi_python}
        invs = {}
        for n in sizes:
            common = {
                "models": [str(model)],
                "accuracy": False,
                "parallel": min(args.parallel or n, n),
                "retries": 0,
                "timeout_s": 600,
                "lock_timeout_s": 60,
            }
            sections = {
                "run": light,
                "budget": GENEROUS,
                "regression": {"metrics": []},
            }
            file_devices = {
                f"pi{i}": {
                    **serving[i].target_values(python=pi_python, workdir=workdirs[i]),
                    **keys,
                    # devices behind one shared sshd are distinct devices (phones of one
                    # exporter host), not one device reached through several entries
                    **({"lock_key": f"bench://pi{i}"} if shared else {}),
                }
                for i in range(n)
            }
            for backend in args.backends.split(","):
                lab_table = {
                    **common,
                    "db": str(root / f"h-{n}-{backend}.sqlite"),
                    "lock_dir": str(root / f"locks-{backend}"),
                }
                extra = {}
                if backend == "labgrid":
                    lab_table["inventory"] = f"{lab.url}?n{n}=yes"
                    # the coordinator and exporters share the 2 cores with N emulated
                    # devices (load ~140 at N = 256): one AcquirePlace went unanswered for
                    # 10 s (the default) there; a real coordinator has its own CPU
                    extra = {"labgrid": {**keys, "timeout_s": args.coordinator_timeout}}
                from tests.support.lab import write_inventory

                path = write_inventory(
                    root / f"lab-{n}-{backend}.toml",
                    {"lab": lab_table, **sections, **extra},
                    file_devices
                    if backend == "file"
                    else {f"pi{i}": {"workdir": workdirs[i]} for i in range(n)},
                )
                invs[(n, backend)] = path
        profiles: dict[tuple[int, str], list[str]] = {}
        incomplete: dict[tuple[int, str], list[str]] = {}
        loads: list[float] = []
        perf_why = ""
        # the smallest N again after the bigger ones, so that its reference is not one
        # point taken at one moment of the machine's load
        # (each `--ref-reps` times: a run of 8 devices is short, and its CPU per device-run
        # carries the run's fixed costs over only 8, so one run of it is a noisy reference)
        small = [k for k in invs if k[0] == sizes[0]]
        again = [(k, "after") for k in small] * args.ref_reps if len(sizes) > 1 else []
        for rep in range(args.reps + 1 + bool(args.profile)):  # rep 0 warms up
            profiling = args.profile and rep == args.reps + 1
            measured = not (rep == 0 or profiling)
            before = [(k, "") for k in small] * (args.ref_reps if measured and again else 1)
            order = before + [(k, "") for k in invs if k not in small] + (again if measured else [])
            for key_, tag in order:
                n, backend = key_
                pids = sorted({s.proc.pid for s in serving[:n]})
                d0 = sum(proc_cpu_s(p) for p in pids)
                i0 = sum(proc_cpu_s(p) for p in infra)
                k0 = proc_cpu_s(lab.proc.pid)
                c0, l0, t0 = system_cpu_s(), lab_cpu_s(), time.perf_counter()
                ch0 = lab_cpu_s(resource.RUSAGE_CHILDREN)
                loads.append(os.getloadavg()[0])
                inv = load_inventory(invs[key_])  # labgrid: the places, from the coordinator
                clock = LeaseClock()
                clock.wrap(inv.backend)
                if profiling:
                    with ThreadProfile() as prof:
                        run = run_lab(inv)
                    dump = Path(args.profile_dir or root) / f"profile-{n}-{backend}.pstats"
                    profiles[key_] = prof.top(n, dump=dump)
                    print(f"  profiled: N={n} {backend} (stats: {dump})", file=sys.stderr)
                    continue
                try:
                    with CostProbe() as probe, PerfStat(exclude=(probe.tid,)) as perf:
                        run = run_lab(inv)
                except Exception as exc:  # the run stopped (e.g. coordinator unreachable)
                    why = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                    print(f"  rep {rep}: N={n} {backend}: RUN STOPPED: {why}", file=sys.stderr)
                    incomplete.setdefault(key_, []).append(f"run stopped: {why}")
                    continue
                wall = time.perf_counter() - t0
                lab_cpu = lab_cpu_s() - l0 - probe.own_s
                children = lab_cpu_s(resource.RUSAGE_CHILDREN) - ch0
                machine = system_cpu_s() - c0
                dev = sum(proc_cpu_s(p) for p in pids) - d0
                inf = sum(proc_cpu_s(p) for p in infra) - i0
                coord = proc_cpu_s(lab.proc.pid) - k0
                # measured: a result with figures — passed, or `suspect` (the device's run
                # was judged contended by the machine's load: measured, but not trusted as a
                # baseline); anything else (error, quarantined, busy) was lost
                got = [r for r in run.results if r.status in ("pass", "suspect", "fail")]
                bad = [f"{r.device}: {r.status}: {r.reason}" for r in run.results if r not in got]
                done = len(got)
                suspect = sum(1 for r in got if r.status == "suspect")
                deferred = sum(getattr(d, "deferred", 0) for d in run.devices)
                if perf.why and not perf_why:
                    perf_why = perf.why
                    print(f"  perf stat not used: {perf.why}", file=sys.stderr)
                print(
                    f"  rep {rep}: N={n}{tag and ' ' + tag} {backend}: {wall:.2f} s, "
                    f"lab CPU {lab_cpu:.2f} s, "
                    f"{done}/{n} measured ({suspect} suspect), {deferred} set aside, "
                    f"load {loads[-1]:.1f}" + (f"; NOT measured: {bad[:3]}" if bad else ""),
                    file=sys.stderr,
                )
                if bad:
                    incomplete.setdefault(key_, []).extend(bad)
                if rep == 0:
                    continue
                samples.setdefault((n, backend, tag), []).append(
                    {
                        "instr": perf.counts["instructions"],
                        "syscalls": perf.counts["raw_syscalls:sys_enter"],
                        "switches": perf.counts["context-switches"],
                        "futex": perf.counts["syscalls:sys_enter_futex"],
                        "wall": wall,
                        "lab": lab_cpu,
                        "children": children,
                        "cost_us": probe.cost_us,
                        "dev": dev,
                        "infra": inf,
                        "coord": coord,
                        "machine": machine,
                        "done": done,
                        "suspect": suspect,
                        "deferred": deferred,
                    }
                )
                leases.setdefault((n, backend, tag), []).extend(clock.samples)
    finally:
        if lab is not None:
            lab.stop()
        for s in servers:
            s.stop()

    cores = os.cpu_count() or 1
    med = statistics.median
    print()
    print(
        f"edgeq lab run, file inventory vs labgrid — {cores} cores, {args.reps} repetitions "
        f"(median), light runner ({args.runs} timed runs), --parallel {args.parallel or 'N'}, "
        + (f"{shared} sshd shared by the devices" if shared else "one sshd per device")
        + (", devices SCHED_IDLE" if args.devices_idle else "")
        + f"; load average while measuring {min(loads):.1f}–{max(loads):.1f}"
    )
    if not samples:  # --reps 0 --profile: the profiles only
        for (n, backend), lines in profiles.items():
            print(f"profile N={n} {backend} (cProfile, every lab thread; per device-run):")
            for line in lines:
                print("  " + line)
        return 0

    def per_run(rs: list[dict], field: str, n: int) -> float | None:
        """The median over `rs` of `field` per device-run (None: not counted)."""
        got = [r[field] / n for r in rs if r[field] is not None]
        return med(got) if got else None

    # the reference: every run of the smallest N (before and, with several N, after the
    # bigger ones), per backend — the median of those runs
    first = sizes[0]
    ref: dict[str, dict[str, float | None]] = {}
    for b in ("file", "labgrid"):
        rs = [r for (n, b_, _), v in samples.items() if n == first and b_ == b for r in v]
        if rs:
            ref[b] = {
                f: per_run(rs, f, first) for f in ("lab", "instr", "syscalls", "futex", "switches")
            }
            ref[b]["cost_us"] = med(r["cost_us"] for r in rs)
            ref[b]["runs"] = len(rs)

    def vs(value: float | None, base: float | None) -> str:
        return f"{value / base:.2f}×" if value is not None and base else "-"

    head = (
        f"{'N':>9} {'backend':<8} {'measured':>9} {'suspect':>7} {'set aside':>9} "
        f"{'wall s':>7} {'lab CPU/dev-run ms':>19} {'vs ref':>7} {'unit µs':>8} "
        f"{'work vs ref':>11} {'instr M/dev-run':>15} {'vs ref':>7} {'syscalls/dev-run':>16} "
        f"{'vs ref':>7} {'futex/dev-run':>13} {'ctx sw/dev-run':>14} {'vs ref':>7} "
        f"{'coord CPU s':>11} {'coord+exp CPU s':>16} {'device CPU s':>13} {'floor s':>8} "
        f"{'wall/floor':>11} {'other CPU s':>12} {'wall/all-CPU':>13} "
        f"{'lease s (med/p90/max)':>22}"
    )
    print(head)
    rows = {}
    for (n, backend, tag), rs in sorted(samples.items(), key=lambda kv: (kv[0][0], kv[0][2])):
        r0 = ref[backend]
        wall = med(r["wall"] for r in rs)
        lab_ms = per_run(rs, "lab", n) * 1000
        instr, calls, futex, switches = (
            per_run(rs, f, n) for f in ("instr", "syscalls", "futex", "switches")
        )
        inf = med(r["infra"] for r in rs)
        coord = med(r["coord"] for r in rs)
        dev = med(r["dev"] for r in rs)
        floor = dev / cores
        other = med(r["machine"] - r["lab"] - r["dev"] - r["infra"] for r in rs)
        busy = med(r["wall"] / (r["machine"] / cores) for r in rs)
        ls = sorted(leases.get((n, backend, tag)) or [0.0])
        p90 = ls[min(len(ls) - 1, int(0.9 * len(ls)))]
        cost = med(r["cost_us"] for r in rs)
        work = (lab_ms / 1000 / r0["lab"]) / (cost / r0["cost_us"])
        if not tag:
            rows[(n, backend)] = {
                "wall": wall,
                "lab_ms": lab_ms,
                "lab_vs": lab_ms / 1000 / r0["lab"],
                "instr_vs": vs(instr, r0["instr"]),
                "calls_vs": vs(calls, r0["syscalls"]),
                "ratio": wall / floor,
                "cost": cost / r0["cost_us"],
                "work": work,
                "children": med(r["children"] for r in rs),
            }
        done = f"{min(r['done'] for r in rs)}/{n}"
        suspect = max(r["suspect"] for r in rs)
        aside = max(r["deferred"] for r in rs)
        label = f"{n} {tag}" if tag else str(n)
        print(
            f"{label:>9} {backend:<8} {done:>9} {suspect:>7} {aside:>9} {wall:7.2f} "
            f"{lab_ms:19.1f} {vs(lab_ms / 1000, r0['lab']):>7} {cost:8.0f} {work:10.2f}× "
            f"{'-' if instr is None else f'{instr / 1e6:.1f}':>15} {vs(instr, r0['instr']):>7} "
            f"{'-' if calls is None else f'{calls:.0f}':>16} {vs(calls, r0['syscalls']):>7} "
            f"{'-' if futex is None else f'{futex:.0f}':>13} "
            f"{'-' if switches is None else f'{switches:.0f}':>14} "
            f"{vs(switches, r0['switches']):>7} "
            f"{coord:11.2f} {inf:16.2f} {dev:13.2f} "
            f"{floor:8.2f} {wall / floor:10.2f}× {other:12.2f} {busy:12.2f}× "
            f"{med(ls):8.3f}/{p90:.3f}/{max(ls):.3f}"
        )
    print()
    for b, r0 in ref.items():
        print(
            f"reference ({b}): N={first}, the median of {r0['runs']} run(s)"
            + (" (before and after the bigger N, interleaved)" if len(sizes) > 1 else "")
            + f": lab CPU {r0['lab'] * 1000:.1f} ms, "
            + ("instructions -" if r0["instr"] is None else f"{r0['instr'] / 1e6:.1f} M instr")
            + ", "
            + ("syscalls -" if r0["syscalls"] is None else f"{r0['syscalls']:.0f} syscalls")
            + " per device-run"
        )
    for n in sizes:
        f_, g = rows.get((n, "file")), rows.get((n, "labgrid"))
        if f_ and g:
            print(
                f"N={n}: labgrid − file = {(g['wall'] - f_['wall']) / n:+.3f} s wall per device, "
                f"{g['lab_ms'] - f_['lab_ms']:+.1f} ms lab CPU per device-run"
            )
    if len(sizes) > 1:
        hi = sizes[-1]
        for backend in ("file", "labgrid"):
            b = rows.get((hi, backend))
            if b:
                print(
                    f"{backend}: per device-run N={hi} vs the N={first} reference: lab CPU "
                    f"{b['lab_vs']:.2f}×, instructions {b['instr_vs']}, system calls "
                    f"{b['calls_vs']} (a fixed unit of work cost {b['cost']:.2f}× as much: "
                    f"CPU over unit cost {b['work']:.2f}×); wall/floor at N={hi} = "
                    f"{b['ratio']:.2f}×"
                )
    print()
    print("lab CPU: every thread of this process (scheduler, SSH, history, labgrid session),")
    print("  user + system (getrusage RUSAGE_SELF), minus the cost probe's own thread;")
    kids = max((r["children"] for r in rows.values()), default=0.0)
    print(f"  its waited-for child processes, not included: at most {kids:.2f} s per run;")
    print("vs ref: per device-run, against the reference line below the table (the smallest")
    print("  N's runs, median); 'N after' rows: the smallest N run again after the bigger N;")
    print("unit µs: thread CPU of a fixed unit of work in the lab process during the run")
    print("  (CostProbe, median); work vs ref: lab CPU vs ref divided by the unit's cost vs ref;")
    print("instr, syscalls, ctx sw: from `perf stat` on every lab thread but the cost probe's")
    print("  (instructions retired, raw_syscalls:sys_enter, context switches; futex: the system")
    print("  calls that are lock and GIL hand-overs between threads) — counts that do")
    print("  not grow with the machine's load as CPU time does; '-': perf could not count it")
    print(f"  ({perf_why or 'instructions need a PMU, which a VM may not expose'});")
    print("device CPU: the sshds and everything under them (shells, device runners);")
    print(f"floor: device CPU / {cores} cores; other CPU: the rest of the machine (other users);")
    print(f"wall/all-CPU: wall / (machine CPU / {cores}) — 1.0× means the cores never idled.")
    print("lease s: per device, reserve + acquire + release (file: the local flock), median,")
    print("  90th percentile and max;")
    print("  labgrid releases are sent without waiting (the run awaits them all at its end).")
    print("measured: results with figures (passed, or suspect: judged contended by the")
    print("  machine's load), fewest over the repetitions; suspect: most in one repetition;")
    print("set aside: devices failed by the lab's own load and run again after the others")
    print("  (most in one run).")
    for key_, lines in incomplete.items():
        print(f"NOT MEASURED at N={key_[0]} {key_[1]}: {len(lines)}, e.g. {lines[0]}")
    for (n, backend), lines in profiles.items():
        print()
        print(f"profile N={n} {backend} (cProfile, every lab thread; per device-run):")
        for line in lines:
            print("  " + line)
    print(
        f"reproduce: .venv/bin/python bench/lab_scaling.py --fleet {args.fleet} "
        f"--reps {args.reps}"
        + (f" --parallel {args.parallel}" if args.parallel else "")
        + (f" --shared-sshd {shared}" if shared else "")
        + (f" --runs {args.runs}" if args.runs != LIGHT_RUN["runs"] else "")
        + (" --profile" if args.profile else "")
        + (f" --backends {args.backends}" if args.backends != "file,labgrid" else "")
        + (f" --ref-reps {args.ref_reps}" if args.ref_reps != 3 else "")
        + (" --devices-idle" if args.devices_idle else "")
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=8, help="devices in the big lab (default 8)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per configuration")
    ap.add_argument("--model", type=Path, help="a .tflite (default: train the test model)")
    ap.add_argument(
        "--no-serial", action="store_true", help="skip the --parallel 1 reference configuration"
    )
    ap.add_argument("--fleet", help="fleet mode: sizes such as 8,64, each through file and labgrid")
    ap.add_argument("--parallel", type=int, help="fleet mode: --parallel (default: N)")
    ap.add_argument(
        "--shared-sshd", type=int, help="fleet mode: K sshd serve the N devices (N/K each)"
    )
    ap.add_argument(
        "--runs", type=int, default=LIGHT_RUN["runs"], help="fleet mode: the runner's timed runs"
    )
    ap.add_argument(
        "--profile", action="store_true", help="fleet mode: one more run per N under cProfile"
    )
    ap.add_argument("--profile-dir", help="fleet mode: where the merged .pstats files go")
    ap.add_argument(
        "--coordinator-timeout",
        type=float,
        default=60.0,
        help="fleet mode: [labgrid] timeout_s, seconds per coordinator request (default 60)",
    )
    ap.add_argument(
        "--devices-idle",
        action="store_true",
        help="fleet mode: the emulated devices run SCHED_IDLE (they get the CPU the lab "
        "leaves, as real devices, which have their own)",
    )
    ap.add_argument(
        "--ref-reps",
        type=int,
        default=3,
        help="fleet mode: runs of the smallest N before and after the others (default 3)",
    )
    ap.add_argument(
        "--backends", default="file,labgrid", help="fleet mode: file, labgrid or both (default)"
    )
    args = ap.parse_args()
    if args.fleet:
        return fleet(args)

    from edgeq.lab import load_inventory, run_lab
    from tests.support import sshd
    from tests.support.device_venv import PI_PACKAGES, ensure_venv
    from tests.support.lab import PI_SSHD

    why = sshd.available()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    os.environ.setdefault("EDGEQ_CACHE_DIR", str(Path(tempfile.gettempdir()) / "edgeq-bench"))
    print("preparing: device venv, model, servers", file=sys.stderr)
    pi_python = str(ensure_venv(PI_PACKAGES, "pi-venv"))
    model = args.model or quick_model(REPO / "tests" / "fixtures")
    root = Path(tempfile.mkdtemp(prefix="edgeq-lab-bench-"))
    servers = []
    try:
        devices = {}
        for i in range(args.devices):
            srv = sshd.SshServer(root / f"sshd{i}", extra_config=PI_SSHD).start()
            servers.append(srv)
            wd = root / f"wd{i}"
            wd.mkdir()
            devices[f"pi{i}"] = srv.target_values(python=pi_python, workdir=str(wd))
        configs = {"1 device": ({"pi0": devices["pi0"]}, 1)}
        n = 2
        while n < args.devices:  # the curve in between: 2, 4, ...
            configs[f"{n} devices"] = ({f"pi{i}": devices[f"pi{i}"] for i in range(n)}, n)
            n *= 2
        configs[f"{args.devices} devices"] = (devices, args.devices)
        if not args.no_serial:
            configs[f"{args.devices} devices, --parallel 1"] = (devices, 1)
        invs = {
            name: load_inventory(
                inventory(
                    root / f"lab{i}.toml", devs, par, root / f"h{i}.sqlite", root / "locks", model
                )
            )
            for i, (name, (devs, par)) in enumerate(configs.items())
        }
        for inv in invs.values():  # warm-up: device caches filled, imports done
            run = run_lab(inv)
            assert run.ok, [r.reason for r in run.results if not r.passed]
        samples = {name: [] for name in invs}
        for rep in range(args.reps):
            for name, inv in invs.items():
                c0, o0, t0 = system_cpu_s(), own_cpu_s(), time.perf_counter()
                run = run_lab(inv)
                wall = time.perf_counter() - t0
                assert run.ok, [r.reason for r in run.results if not r.passed]
                samples[name].append((wall, system_cpu_s() - c0, own_cpu_s() - o0))
                print(f"  rep {rep + 1}: {name}: {wall:.2f} s", file=sys.stderr)
    finally:
        for s in servers:
            s.stop()

    base = statistics.median(w for w, _, _ in samples["1 device"])
    cores = os.cpu_count() or 1
    print()
    print(f"edgeq lab run scaling — {cores} cores, {args.reps} repetitions (median), light runner")
    print(
        f"{'configuration':<28} {'wall s':>7} {'vs 1':>6} {'machine CPU s':>14} "
        f"{'lab process CPU s':>18} {'CPU-bound floor s':>18}"
    )
    for name, rows in samples.items():
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        own = statistics.median(r[2] for r in rows)
        print(
            f"{name:<28} {wall:7.2f} {wall / base:5.2f}× {cpu:14.2f} {own:18.2f} "
            f"{cpu / cores:18.2f}"
        )
    print()
    print("machine CPU s: all processes (sshd, shells, device runners, the lab, other users);")
    print(f"CPU-bound floor: machine CPU s / {cores} cores — no schedule can beat it here.")
    print(
        f"reproduce: .venv/bin/python bench/lab_scaling.py --devices {args.devices} "
        f"--reps {args.reps}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
