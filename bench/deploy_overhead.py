"""Benchmark: deploy orchestration overhead — wall time minus the time the runner spends
measuring (training excluded) — on the local target and over a localhost sshd.

    .venv/bin/python bench/deploy_overhead.py [--repeats 3]      # the sshd part needs root

Each target is deployed once cold (runner, model and data are sent) and `repeats` times
warm (everything cached on the device: zero bytes sent). Targets: local ≤ 3 s,
sshd ≤ 5 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, quick_int8_model, setup_env

sys.path.insert(0, str(REPO))
from edgeq import config, deploy
from edgeq.budget import Budget


def one(tcfg, model, settings):
    res = deploy.deploy(
        tcfg, model, "mnist", REPO / "tests" / "fixtures", Budget(), settings, results_dir=None
    )
    t = res.timing
    return t["total_s"], t["device_measure_s"], t["orchestration_s"], res.bytes_sent


def main() -> None:
    setup_env()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    model = quick_int8_model(Path("/tmp/edgeq-bench-model"))
    settings = deploy.RunSettings(runs=100, min_s=0.5, warmup_runs=10, warmup_min_s=0.2)
    work = Path(tempfile.mkdtemp(prefix="edgeq-bench-deploy-"))
    targets = [
        (
            "local",
            config.validate_target(
                "local",
                {"transport": "local", "python": sys.executable, "workdir": str(work / "local")},
                "bench",
            ),
        )
    ]
    server = None
    try:
        from tests.support import sshd
        from tests.support.device_venv import PI_PACKAGES, ensure_venv

        why = sshd.available()
        if why:
            print(f"(sshd part skipped: {why})")
        else:
            server = sshd.SshServer(work / "sshd").start()
            values = server.target_values(
                python=str(ensure_venv(PI_PACKAGES, "pi-venv")), workdir=str(work / "pi")
            )
            targets.append(("sshd", config.validate_target("pi", values, "bench")))
        rows = []
        for label, tcfg in targets:
            cold = one(tcfg, model, settings)
            warm = [one(tcfg, model, settings) for _ in range(args.repeats)]
            rows.append((label, cold, warm))
    finally:
        if server:
            server.stop()
    target = {"local": 3.0, "sshd": 5.0}
    print(
        f"{'target':<8}{'run':<6}{'total s':>9}{'measuring s':>13}{'overhead s':>12}"
        f"{'bytes sent':>12}{'target':>8}"
    )
    print("-" * 68)
    for label, cold, warm in rows:
        print(
            f"{label:<8}{'cold':<6}{cold[0]:>9.2f}{cold[1]:>13.2f}{cold[2]:>12.2f}"
            f"{cold[3]:>12,}{'':>8}"
        )
        med = [statistics.median(w[i] for w in warm) for i in range(3)]
        print(
            f"{label:<8}{'warm':<6}{med[0]:>9.2f}{med[1]:>13.2f}{med[2]:>12.2f}"
            f"{warm[-1][3]:>12,}{f'<= {target[label]:g}':>8}"
        )
    print(
        f"(warm: median of {args.repeats}; overhead = total − the runner's own phases and "
        f"accuracy time, i.e. staging, transfer checks, python start-up and imports, "
        f"pull, validation, verdict)"
    )
    print("reproduce: .venv/bin/python bench/deploy_overhead.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
