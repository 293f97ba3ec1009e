"""Does the host's own speed change during one run? One interpreter in one process times the
same invoke in consecutive blocks; each block's p50 is printed in order, then how the blocks
fall into speeds. If the blocks of ONE process move between speeds, the modes that whole runs
land in come from the machine (a neighbour, the hypervisor), not from the process — and a
run's steadiest stretch (runner 1.5's `steady_p50`) is the figure that tracks the model.

    .venv/bin/python bench/host_speed.py [--processes 3] [--blocks 40] [--block-invokes 400]

Measured 2026-12-04 on this project's 2-core host at load average ~2 (defaults: 3 processes ×
40 blocks of 400 invokes of the book CNN float32 at batch 5, one thread, ~0.11 s a block):
process 1 at 0.269 ms with 5 of 40 blocks at 0.308–0.311 ms, process 3 at 0.269 ms with 5
blocks at 0.306–0.330 ms, process 2 at 0.270–0.287 ms throughout. The same loop run by hand
an hour earlier had whole stretches at 0.31–0.32 ms and at 0.41–0.52 ms inside one process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import quick_int8_model, setup_env

CHILD = """
import json, statistics, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
model, blocks, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
it = Interpreter(model, num_threads=1)
d = it.get_input_details()[0]
it.resize_tensor_input(d["index"], [5, 28, 28, 1])
it.allocate_tensors()
it.set_tensor(d["index"], np.random.default_rng(0).random((5, 28, 28, 1), dtype=np.float32))
for _ in range(50):
    it.invoke()
out = []
clock = time.perf_counter_ns
for _ in range(blocks):
    t = []
    for _ in range(per):
        a = clock(); it.invoke(); t.append(clock() - a)
    out.append(statistics.median(t) / 1e6)
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--blocks", type=int, default=40)
    ap.add_argument("--block-invokes", type=int, default=400)
    args = ap.parse_args()
    setup_env()
    cache = Path(os.environ["EDGEQ_CACHE_DIR"]) / "bench-model"
    model = quick_int8_model(cache).with_name("model_float32.tflite")
    print("| process | block p50s in order (ms) | fastest | slowest | blocks > 1.1 × fastest |")
    print("|---|---|---|---|---|")
    for p in range(args.processes):
        got = subprocess.run(
            [sys.executable, "-c", CHILD, str(model), str(args.blocks), str(args.block_invokes)],
            check=True, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        blocks = json.loads(got.stdout.strip().splitlines()[-1])
        low = min(blocks)
        slow = sum(b > 1.1 * low for b in blocks)
        seq = " ".join(f"{b:.3f}" for b in blocks)
        print(f"| {p + 1} | {seq} | {low:.3f} | {max(blocks):.3f} | {slow}/{len(blocks)} |")
    print(
        f"Reproduce:\n  .venv/bin/python bench/host_speed.py --processes {args.processes} "
        f"--blocks {args.blocks} --block-invokes {args.block_invokes}"
    )


if __name__ == "__main__":
    main()
