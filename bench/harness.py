"""Benchmark: what the device runner's harness adds to a bare invoke() loop, and how stable
its p50 is from run to run.

    .venv/bin/python bench/harness.py [--model MODEL.tflite] [--rounds 5] [--runs 2000]

1. In one process, on one interpreter, alternate `rounds` times: a bare loop
   (`t = perf_counter_ns(); invoke(); append(...)`) and the runner's `benchmark()`; the
   ratio of the medians of their p50s is the harness overhead (target ≤ 1.03).
2. Run the runner as a program (as the local target does) `rounds` times; the coefficient
   of variation of its steady-state p50 is the run-to-run noise (target ≤ 3 %).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import quick_int8_model, setup_env

from edgeq import stage
from edgeq_device import edgeq_runner as runner


def bare_p50(interp, sample, runs: int) -> float:
    inp = interp.get_input_details()[0]["index"]
    interp.set_tensor(inp, sample)
    invoke, clock = interp.invoke, time.perf_counter_ns
    samples = []
    for _ in range(runs):
        t = clock()
        invoke()
        samples.append(clock() - t)
    return float(np.percentile(np.array(samples) / 1e6, 50))


def main() -> None:
    setup_env()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    model = args.model or quick_int8_model(Path("/tmp/edgeq-bench-model"))

    cls, rt, ver = runner.find_interpreter()
    interp = runner.make_interpreter(cls, str(model), args.threads)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    sample = runner.quantize_input(np.zeros(inp["shape"], np.float32), inp)
    ns = argparse.Namespace(warmup_runs=200, warmup_min_s=0, runs=args.runs, min_s=0, max_s=60)
    for _ in range(500):
        interp.invoke()
    bare, harness = [], []
    for i in range(args.rounds * 2):  # alternate which goes first, so order cannot bias
        if i % 2 == 0:
            bare.append(bare_p50(interp, sample, args.runs))
            harness.append(runner.benchmark(interp, sample, ns)["latency_ms"]["invoke"]["p50"])
        else:
            harness.append(runner.benchmark(interp, sample, ns)["latency_ms"]["invoke"]["p50"])
            bare.append(bare_p50(interp, sample, args.runs))
    ratio = statistics.median(harness) / statistics.median(bare)

    p50s = []
    for _ in range(args.rounds):
        proc = subprocess.run(
            [
                sys.executable,
                str(stage.runner_path()),
                str(model),
                "--runs",
                str(args.runs),
                "--min-s",
                "1",
                "--threads",
                str(args.threads),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        p50s.append(json.loads(proc.stdout)["latency_ms"]["invoke"]["p50"])
    cv = statistics.stdev(p50s) / statistics.mean(p50s)

    print(f"model {model} ({model.stat().st_size:,} B), {rt} {ver}, {args.threads} thread(s)")
    print(f"{'measure':<44}{'value':>12}{'target':>10}")
    print("-" * 66)
    print(f"{'bare invoke() loop p50, median of rounds (ms)':<44}{statistics.median(bare):>12.4f}")
    print(
        f"{'runner benchmark() p50, median of rounds (ms)':<44}{statistics.median(harness):>12.4f}"
    )
    print(f"{'harness / bare (same process, interleaved)':<44}{ratio:>12.3f}{'<= 1.03':>10}")
    print(f"{'runner program p50 over runs (ms)':<44}{' '.join(f'{p:.4f}' for p in p50s):>12}")
    print(f"{'run-to-run CV of p50':<44}{cv:>12.2%}{'<= 3 %':>10}")
    print("reproduce: .venv/bin/python bench/harness.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
