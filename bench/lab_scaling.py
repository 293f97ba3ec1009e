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

Run from the repository root (needs root for the test sshd, like the tests):

    .venv/bin/python bench/lab_scaling.py                 # 8 vs 1, 5 repetitions
    .venv/bin/python bench/lab_scaling.py --devices 8 --reps 5 --model path/to/model.tflite
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
    from edgeq import deploy

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
    return deploy.prepare_artifact(recipe, data_dir, lambda m: print(f"  {m}", file=sys.stderr))


def inventory(path: Path, devices: dict[str, dict], parallel: int, db: Path, locks: Path, model):
    from tests.lab.conftest import write_inventory

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=8, help="devices in the big lab (default 8)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per configuration")
    ap.add_argument("--model", type=Path, help="a .tflite (default: train the test model)")
    ap.add_argument(
        "--no-serial", action="store_true", help="skip the --parallel 1 reference configuration"
    )
    args = ap.parse_args()

    from edgeq.lab import load_inventory, run_lab
    from tests.lab.conftest import PI_SSHD
    from tests.support import sshd
    from tests.support.device_venv import PI_PACKAGES, ensure_venv

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
