"""Benchmark: what the device runner's harness adds to a bare invoke() loop, on the book's
MNIST model and on a larger one, and how stable its p50 is from run to run.

    .venv/bin/python bench/harness.py [--model MODEL.tflite] [--rounds 9] [--runs 2000]
                                      [--large-model M.tflite] [--large-runs 40]
                                      [--large-rounds 15] [--no-large]

1. In one process, on one interpreter, `rounds` times back to back (alternating which goes
   first): a bare loop (`t = perf_counter_ns(); invoke(); append(...)`) and the runner's
   `benchmark()`; the median over the rounds of (runner p50 / bare p50) is the harness
   overhead (target ≤ 1.03). Done for
   the 1-epoch book CNN in int8 and for a random-weight MobileNetV2 α=0.35 float32 at
   [1, 224, 224, 3] (built here with keras.applications, weights=None: nothing downloaded;
   latency depends on the graph, not on the weights).
   The runner's `benchmark()` runs with its device sampling on (thermal zones, core
   frequencies, throttle flags read before and after the warm-up and after the steady
   state), as on a device.
2. Run the runner as a program (as the local target does) `rounds` times on the MNIST
   model; the coefficient of variation of its steady-state p50 is the run-to-run noise
   (target ≤ 3 %).
3. `edgeq bench --repeat 5` on the local target (five fresh runner processes): the half
   width of the bootstrap 95 % interval of the median p50, relative to it (target ±2 %).
4. The Python runner beside the native `benchmark_model` (the real LiteRT build with
   XNNPACK on, `x86_64-xnnpack` of $EDGEQ_BENCHMARK_MODEL_DIR, default
   ../shared/tools/benchmark_model — against ai-edge-litert's interpreter, whose default
   delegate is XNNPACK too), each as its own process, the same threads, runs and warm-up
   runs, `native-rounds` rounds alternating which goes first: the median over the rounds
   of (Python runner p50 / benchmark_model p50), on both models (target ≤ 1.05).
   `--only-native` runs this part alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, quick_int8_model, setup_env

sys.path.insert(0, str(REPO))
from edgeq import devapi, paths
from edgeq_android.parser import parse_output
from tests.support.foreign_models import mobilenet_v2_035

NATIVE_DIR = Path(
    os.environ.get("EDGEQ_BENCHMARK_MODEL_DIR") or REPO.parent / "shared/tools/benchmark_model"
)


def python_runner_p50(model: Path, runs: int, warm: int, threads: int) -> float:
    """The device runner as a program (as the local target runs it): its p50 in ms."""
    argv = [sys.executable, str(paths.runner_path()), str(model), "--runs", str(runs),
            "--min-s", "0", "--warmup-runs", str(warm), "--warmup-min-s", "0",
            "--threads", str(threads)]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)["latency_ms"]["invoke"]["p50"]


def native_p50(binary: Path, model: Path, runs: int, warm: int, threads: int) -> float:
    """The real benchmark_model: the `median=` of its timed runs, in ms."""
    argv = [str(binary), f"--graph={model}", f"--num_runs={runs}", "--min_secs=0",
            f"--warmup_runs={warm}", "--warmup_min_secs=0", f"--num_threads={threads}"]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, check=True)
    log = parse_output(proc.stdout + proc.stderr)
    if not log.xnnpack:
        raise SystemExit(f"{binary} did not run XNNPACK: compare like with like")
    return log.inference.percentiles["p50"] / 1000


def interleaved(rounds: int, first, second) -> tuple[list[float], list[float], dict]:
    """`first()` and `second()` once per round, back to back, alternating which goes first;
    their values, and the median and quartiles of the per-round ratios first/second (robust
    to load that drifts between rounds: this machine is shared)."""
    a, b = [], []
    for i in range(rounds):
        pair = [lambda: a.append(first()), lambda: b.append(second())]
        for step in pair if i % 2 == 0 else pair[::-1]:
            step()
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    stats = {
        "ratio": statistics.median(ratios),
        "ratio_quartiles": [float(q) for q in np.percentile(ratios, [25, 75])],
    }
    return a, b, stats


def ratio_table(rows, shown: tuple[tuple[str, str], ...], what: str, target: str, how: str) -> None:
    """The table of an `interleaved` measurement per model (`how` says how, with {runs}):
    both p50s, the ratio of the rounds' medians against its target, the rounds' quartiles."""
    for label, path, r in rows:
        print(
            f"  {label}: {path} ({path.stat().st_size:,} B), {r['rounds']} "
            + how.format(runs=r["runs"])
        )
    print(f"{'measure':<52}{'value':>12}{'target':>10}")
    print("-" * 74)
    for label, _path, r in rows:
        for name, key in shown:
            print(f"{label + f': {name} p50 (ms)':<52}{r[key]:>12.4f}")
        print(f"{label + f': {what} (median of rounds)':<52}{r['ratio']:>12.3f}{target:>10}")
        q1, q3 = r["ratio_quartiles"]
        print(f"{label + ': ... quartiles of the rounds':<52}{f'{q1:.3f}-{q3:.3f}':>12}")


def python_vs_native(
    binary: Path, model: Path, rounds: int, runs: int, warm: int, threads: int
) -> dict:
    """Python runner vs benchmark_model, one process each per round, alternating order."""
    py, nat, stats = interleaved(
        rounds,
        lambda: python_runner_p50(model, runs, warm, threads),
        lambda: native_p50(binary, model, runs, warm, threads),
    )
    return {
        "python": statistics.median(py),
        "native": statistics.median(nat),
        **stats,
        "rounds": rounds,
        "runs": runs,
    }


def print_native(rows: list, binary: Path, threads: int) -> None:
    print(f"{devapi.runtime()} (Python runner) vs {binary} (XNNPACK on), {threads} thread(s)")
    shown = (("Python runner", "python"), ("benchmark_model", "native"))
    how = "alternating rounds of {runs} runs, one process per measurement"
    ratio_table(rows, shown, "Python / native", "<= 1.05", how)


def bare_p50(interp, sample, runs: int) -> float:
    for d, a in zip(interp.get_input_details(), sample, strict=True):
        interp.set_tensor(d["index"], a)
    invoke, clock = interp.invoke, time.perf_counter_ns
    samples = []
    for _ in range(runs):
        t = clock()
        invoke()
        samples.append(clock() - t)
    return float(np.percentile(np.array(samples) / 1e6, 50))


def overhead(model: Path, rounds: int, runs: int, threads: int, warm: int) -> dict:
    """Bare loop vs the runner's benchmark(), same interpreter, interleaved."""
    interp = devapi.open_model(model, threads)
    interp.allocate_tensors()
    specs = [devapi.input_spec(d) for d in interp.get_input_details()]
    sample = next(devapi.random_inputs(specs, 1, seed=0))  # what the runner feeds
    ns = argparse.Namespace(warmup_runs=warm, warmup_min_s=0, runs=runs, min_s=0, max_s=600)
    for d, a in zip(interp.get_input_details(), sample, strict=True):
        interp.set_tensor(d["index"], a)
    for _ in range(warm):
        interp.invoke()
    bare, harness = [], []
    taken = []

    def sampling(phase: str) -> None:  # the device runner's own sampling, on
        taken.append(devapi.runner.sample_device(phase))

    harness, bare, stats = interleaved(
        rounds,
        lambda: devapi.benchmark(interp, sample, ns, None, sampling)["latency_ms"]["invoke"]["p50"],
        lambda: bare_p50(interp, sample, runs),
    )
    return {
        "bare": statistics.median(bare),
        "harness": statistics.median(harness),
        **stats,
        "runs": runs,
        "rounds": rounds,
    }


def main() -> None:
    setup_env()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--large-model", type=Path, help="default: MobileNetV2 α=0.35, built here")
    ap.add_argument("--large-runs", type=int, default=40)
    ap.add_argument("--large-rounds", type=int, default=15)
    ap.add_argument("--no-large", action="store_true", help="skip the larger model")
    ap.add_argument(
        "--native-binary", type=Path, default=NATIVE_DIR / "x86_64-xnnpack" / "benchmark_model"
    )
    ap.add_argument("--native-rounds", type=int, default=9)
    ap.add_argument("--only-native", action="store_true", help="part 4 alone")
    args = ap.parse_args()
    model = args.model or quick_int8_model(Path("/tmp/edgeq-bench-model"))
    large = None
    if not args.no_large:
        large = args.large_model or mobilenet_v2_035(Path("/tmp/edgeq-bench-model"))

    native = [("book CNN", model, python_vs_native(args.native_binary, model,
                                                   args.native_rounds, args.runs, 500,
                                                   args.threads))]  # fmt: skip
    if large is not None:
        nv = python_vs_native(
            args.native_binary, large, args.native_rounds, args.large_runs, 20, args.threads
        )
        native.append(("MobileNetV2 0.35", large, nv))
    if args.only_native:
        print_native(native, args.native_binary, args.threads)
        print(f"load average while measuring: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
        print("reproduce: .venv/bin/python bench/harness.py " + " ".join(sys.argv[1:]))
        return

    rows = [("book CNN", model, overhead(model, args.rounds, args.runs, args.threads, 500))]
    if large is not None:
        ov = overhead(large, args.large_rounds, args.large_runs, args.threads, 20)
        rows.append(("MobileNetV2 0.35", large, ov))

    p50s = []
    for _ in range(args.rounds):
        proc = subprocess.run(
            [
                sys.executable,
                str(paths.runner_path()),
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

    from edgeq import config, deploy
    from edgeq.settings import RunSettings

    rep = deploy.deploy(
        config.local_target(),
        model,
        with_data=False,
        results_dir=None,
        settings=RunSettings(runs=args.runs, min_s=1.0, threads=args.threads, repeat=5),
    ).run["repeat"]
    p50 = rep["p50"]
    width = (p50["ci_high"] - p50["ci_low"]) / 2 / p50["median"]

    print(f"{devapi.runtime()}, {args.threads} thread(s)")
    shown = (("bare invoke() loop", "bare"), ("runner benchmark()", "harness"))
    ratio_table(rows, shown, "runner / bare", "<= 1.03", "interleaved rounds of {runs} runs")
    print(f"{'book CNN: runner program p50 over runs (ms)':<52}")
    print(f"{'':<4}{' '.join(f'{p:.4f}' for p in p50s)}")
    print(f"{'book CNN: run-to-run CV of p50':<52}{cv:>12.2%}{'<= 3 %':>10}")
    ci = f"{p50['ci_low']:.4f}..{p50['ci_high']:.4f}"
    print(f"{'book CNN: --repeat 5, median p50 (ms), 95 % CI':<52}{p50['median']:>12.4f}  {ci}")
    print(f"{'book CNN: --repeat 5, CI half-width / median':<52}{width:>12.2%}{'<= 2 %':>10}")
    print()
    print_native(native, args.native_binary, args.threads)
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    print("reproduce: .venv/bin/python bench/harness.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
