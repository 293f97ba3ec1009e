"""`edgeq compare`'s false-positive rate on identical setups, and its power on a real 20 %
slowdown, before (main's test: bootstrap of the samples, or of the repetitions' medians)
and after (the unit is the run: `stats.runs_difference`; one run per side claims nothing).

Runs are recorded once, each a fresh device-runner process on this host (the local target,
the way `edgeq bench` runs it), alternating the two setups so both see the same ambient load:

    A  the book CNN (float32), input batch 5           (--input-shape NAME=5,28,28,1)
    B  the same model, batch 6: 20 % more work per invoke — a real slowdown

then cut into pairs and judged with both tests side by side:

    identical, 1 run per side      A_i  vs A_j           (disjoint runs)
    identical, --repeat R          R runs of A vs R other runs of A
    slowdown,  1 run per side      A_i  vs B_i
    slowdown,  --repeat R          R runs of A vs R runs of B

    .venv/bin/python bench/compare_fpr.py [--pairs 20] [--repeat 3] [--min-s 0.3]
    .venv/bin/python bench/compare_fpr.py --load runs.json     # judge recorded runs again
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import REPO, quick_int8_model, setup_env

RUNNER = REPO / "device_scripts" / "edgeq_runner.py"
BATCH_A, BATCH_B = 5, 6


def input_name(model: Path) -> str:
    from edgeq import devapi

    return devapi.model_io(model).inputs[0].name


def one_run(model: Path, name: str, batch: int, min_s: float, out: Path) -> dict:
    subprocess.run(
        [sys.executable, str(RUNNER), str(model), "--threads", "1", "--runs", "50",
         "--min-s", str(min_s), "--input-shape", f"{name}={batch},28,28,1", "--out", str(out)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    doc = json.loads(out.read_text())
    doc.pop("sampling", None)
    return doc


def record(model: Path, n_a: int, n_b: int, min_s: float) -> dict:
    name = input_name(model)
    runs: dict = {"model": str(model), "min_s": min_s, "A": [], "B": []}
    order = ["A"] * n_a + ["B"] * n_b
    # interleave: A B A B ... then the rest of A
    plan = ["A", "B"] * n_b + ["A"] * (n_a - n_b)
    assert sorted(plan) == sorted(order)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for i, side in enumerate(plan):
            batch = BATCH_A if side == "A" else BATCH_B
            runs[side].append(one_run(model, name, batch, min_s, Path(tmp) / "r.json"))
            print(f"  run {i + 1}/{len(plan)} ({side}) {time.monotonic() - t0:.0f} s",
                  file=sys.stderr)  # fmt: skip
    return runs


def deploy_doc(docs: list[dict], label: str) -> dict:
    """What a deploy result of these runs would hold (one run, or --repeat len(docs))."""
    from edgeq.measure import summarise

    run = dict(docs[0])
    if len(docs) > 1:
        run["repeat"] = summarise(docs)
        run["latency_samples_ms"] = {
            "invoke": [x for d in docs for x in d["latency_samples_ms"]["invoke"]]
        }
    return {"schema": "edgeq.deploy/1", "target": {"name": "local"}, "run": run,
            "artifact": {"path": label, "sha256": run["model"]["sha256"]},
            "edgeq_version": "bench"}  # fmt: skip


def old_test(a, b, metric: str):
    """main's compare (before this change): repetitions ≥ 2 → bootstrap of their medians,
    else the samples of the two runs → bootstrap of the quantile."""
    from edgeq.stats import quantile_difference

    q = 0.5 if metric == "p50" else 0.9
    if a.reps and b.reps and len(a.reps[metric]) >= 2 and len(b.reps[metric]) >= 2:
        return quantile_difference(a.reps[metric], b.reps[metric], 0.5)
    if a.samples and b.samples and len(a.samples) >= 5 and len(b.samples) >= 5:
        return quantile_difference(a.samples, b.samples, q)
    return None


def with_steady(docs: list[dict]) -> list[dict]:
    """Runs recorded by runner < 1.5 get their steadiest stretch computed here, by the
    runner's own function, from the samples the document kept (every `every`-th invoke;
    runner 1.5 computes it on all of them)."""
    sys.path.insert(0, str(REPO / "device_scripts"))
    from edgeq_runner import steady_stats

    out = []
    for d in docs:
        inv = d["latency_ms"]["invoke"]
        if "steady_p50" not in inv:
            kept = d["latency_samples_ms"]["invoke"]
            d = {**d, "latency_ms": {**d["latency_ms"], "invoke": {
                **inv, **steady_stats([x * 1e6 for x in kept])}}}  # fmt: skip
        out.append(d)
    return out


def _whole_run(side):
    """The side as a runner without the steadiest stretch would give it."""
    side.steady = {}
    if side.reps:
        side.reps = {k: v for k, v in side.reps.items() if not k.startswith("steady_")}
    return side


def judge(pairs: list[tuple[list[dict], list[dict]]], metric: str) -> tuple[int, ...]:
    """(called significant before, after on the whole run, after on the steadiest stretch
    (what `compare` concludes by), pairs)."""
    from edgeq.compare import compare_sides, side_from_run

    before = whole = steady = 0
    for xa, xb in pairs:
        da, db = deploy_doc(xa, "a"), deploy_doc(xb, "b")
        sa = side_from_run("a", "local", "m", "k", da["run"], da)
        sb = side_from_run("b", "local", "m", "k", db["run"], db)
        old = old_test(sa, sb, metric)
        before += bool(old and old.significant)
        res = compare_sides(sa, sb, metric)
        new = res.changes[res.judged].test
        steady += bool(new and new.significant)
        res = compare_sides(_whole_run(sa), _whole_run(sb), metric)
        new = res.changes[metric].test
        whole += bool(new and new.significant)
    return before, whole, steady, len(pairs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20, help="pairs per row of the table")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--min-s", type=float, default=0.3)
    ap.add_argument("--load", type=Path, help="judge runs recorded earlier (--save)")
    ap.add_argument("--save", type=Path, default=Path("/tmp/edgeq-compare-fpr-runs.json"))
    args = ap.parse_args()
    setup_env()
    n, r = args.pairs, args.repeat
    if args.load:
        runs = json.loads(args.load.read_text())
    else:
        cache = Path(os.environ["EDGEQ_CACHE_DIR"]) / "bench-model"
        model = quick_int8_model(cache).with_name("model_float32.tflite")
        # identical pairs need 2·R·n runs of A (disjoint); the slowdown rows reuse A's first
        # R·n runs against R·n runs of B
        runs = record(model, 2 * r * n, r * n, args.min_s)
        args.save.write_text(json.dumps(runs))
    a, b = with_steady(runs["A"]), with_steady(runs["B"])
    rows = []
    single_same = [([a[2 * i]], [a[2 * i + 1]]) for i in range(min(n, len(a) // 2))]
    rep_same = [
        (a[2 * r * i : 2 * r * i + r], a[2 * r * i + r : 2 * r * (i + 1)])
        for i in range(min(n, len(a) // (2 * r)))
    ]
    single_slow = [([a[i]], [b[i]]) for i in range(min(n, len(b)))]
    rep_slow = [
        (a[r * i : r * (i + 1)], b[r * i : r * (i + 1)]) for i in range(min(n, len(b) // r))
    ]
    for label, pairs in (
        ("identical, 1 run per side", single_same),
        (f"identical, --repeat {r}", rep_same),
        ("B +20 % work, 1 run per side", single_slow),
        (f"B +20 % work, --repeat {r}", rep_slow),
    ):
        for metric in ("p50", "p90"):
            rows.append((label, metric, *judge(pairs, metric)))
    p50 = [d["latency_ms"]["invoke"]["p50"] for d in a]
    p50b = [d["latency_ms"]["invoke"]["p50"] for d in b]
    print(f"\n{len(a)} runs of A (batch {BATCH_A}), {len(b)} of B (batch {BATCH_B}); "
          f"p50 per run: A {min(p50):.4g}–{max(p50):.4g} ms, B {min(p50b):.4g}–{max(p50b):.4g} ms; "
          f"--min-s {runs['min_s']:g}, threads 1, load1 at the end "
          f"{a[-1].get('contention', {}).get('load1_after')}")  # fmt: skip
    s50 = [d["latency_ms"]["invoke"]["steady_p50"] for d in a]
    s50b = [d["latency_ms"]["invoke"]["steady_p50"] for d in b]
    print(f"steadiest stretch's p50 per run: A {min(s50):.4g}–{max(s50):.4g} ms, "
          f"B {min(s50b):.4g}–{max(s50b):.4g} ms")  # fmt: skip
    print("| pairs | metric | called significant: before (samples) | after, whole run | "
          "after, steadiest stretch (what compare concludes by) |")  # fmt: skip
    print("|---|---|---|---|---|")
    for label, metric, before, whole, steady, total in rows:
        print(f"| {label} | {metric} | {before}/{total} | {whole}/{total} | {steady}/{total} |")
    print("\nafter, one run per side: no significance is claimed (process-to-process variation "
          "is not covered), so 0 by construction; the --repeat rows are the test.")  # fmt: skip
    again = f".venv/bin/python bench/compare_fpr.py --load {args.load or args.save}  # judge again"
    first = f"--pairs {n} --repeat {r} --min-s {runs['min_s']:g}"
    print(f"Reproduce:\n  .venv/bin/python bench/compare_fpr.py {first}\n  {again}")


if __name__ == "__main__":
    main()
