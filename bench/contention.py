"""How contention shows in a run: the figures behind measure.py's `contended` / `dispersed`.

Runs the device runner (a fresh process each time, like `--repeat`) on this host under two
conditions, alternating so that both see the same ambient load:

    ambient   whatever else the machine is doing (on a shared host: other people's work)
    + stress  ambient plus `stress-ng --cpu <cores>` started by this script

and prints per condition the spread of what the runner reports (its own cores, other
processes' cores, their share of the run's cores, steal, load) and of the dispersion
(p99/p50, CV, bimodality coefficient), and how many runs measure.validity calls `suspect`
with the defaults (CONTENDED_SHARE, DISPERSED_P99_P50, DISPERSED_CV).

    .venv/bin/python bench/contention.py [--runs 8] [--min-s 1.0] [--model M.tflite]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import REPO, quick_int8_model, setup_env

RUNNER = REPO / "device_scripts" / "edgeq_runner.py"


def one_run(model: Path, min_s: float, out: Path) -> dict:
    subprocess.run(
        [sys.executable, str(RUNNER), str(model), "--threads", "1", "--runs", "50",
         "--min-s", str(min_s), "--out", str(out)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return json.loads(out.read_text())


def start_stress(cores: int) -> subprocess.Popen:
    exe = shutil.which("stress-ng")
    if exe is None:
        sys.exit("stress-ng is not installed (apt-get install stress-ng)")
    proc = subprocess.Popen(
        [exe, "--cpu", str(cores), "--timeout", "600s", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    return proc


def q(values: list[float]) -> str:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return "-"
    return f"{statistics.median(vals):.3g} [{vals[0]:.3g}–{vals[-1]:.3g}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8, help="runs per condition")
    ap.add_argument("--min-s", type=float, default=1.0)
    ap.add_argument("--model", type=Path, default=None)
    args = ap.parse_args()
    setup_env()
    from edgeq import measure

    model = args.model or quick_int8_model(Path(os.environ["EDGEQ_CACHE_DIR"]) / "bench-model")
    cores = os.cpu_count() or 1
    rows: dict[str, list[dict]] = {"ambient": [], "+ stress": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for cond in rows:
                stress = start_stress(cores) if cond == "+ stress" else None
                try:
                    doc = one_run(model, args.min_s, Path(tmp) / "run.json")
                finally:
                    if stress is not None:
                        stress.terminate()
                        stress.wait(timeout=30)
                v = measure.validity([], doc, 1)
                rows[cond].append({"doc": doc, "validity": v})
                print(f"  run {i + 1}/{args.runs} {cond}: {v['verdict']}", file=sys.stderr)
    print(f"\nmodel {model.name}, threads 1, --min-s {args.min_s:g}, {args.runs} runs per "
          f"condition, {cores} cores, stress-ng --cpu {cores}")  # fmt: skip
    head = ("condition", "self cores", "others cores", "others share", "steal cores", "load1",
            "p99/p50", "CV", "bimodality", "contended", "dispersed", "suspect")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for cond, rs in rows.items():
        con = [r["validity"].get("contention") or {} for r in rs]
        dis = [r["validity"].get("dispersion") or {} for r in rs]
        cells = [
            cond,
            q([c.get("self_cores") for c in con]),
            q([c.get("others_cores") for c in con]),
            q([c.get("others_share") for c in con]),
            q([c.get("steal_cores") for c in con]),
            q([c.get("load1_after") for c in con]),
            q([d.get("p99_over_p50") for d in dis]),
            q([d.get("cv") for d in dis]),
            q([d.get("bimodality_coefficient") for d in dis]),
            f"{sum(bool(c.get('contended')) for c in con)}/{len(rs)}",
            f"{sum(bool(d.get('dispersed')) for d in dis)}/{len(rs)}",
            f"{sum(r['validity']['verdict'] != 'valid' for r in rs)}/{len(rs)}",
        ]
        print("| " + " | ".join(cells) + " |")
    bounds = f"p99/p50 > {measure.DISPERSED_P99_P50:g} or CV > {measure.DISPERSED_CV:g}"
    print(f"\nthresholds: contended from others share {measure.CONTENDED_SHARE:g}; "
          f"dispersed from {bounds}")  # fmt: skip
    print("median [min–max] per condition. Reproduce:\n  .venv/bin/python bench/contention.py "
          f"--runs {args.runs} --min-s {args.min_s:g}")  # fmt: skip


if __name__ == "__main__":
    main()
