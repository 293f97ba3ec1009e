"""The lab's false-regression rate on identical runs of a loaded host, and its detection of a
real 20 % slowdown: before (main: the band median ± max(k·MAD, 7 %) alone, every run
judged) and after (band AND significance vs the series's run-to-run spread; a suspect run
is recorded as `suspect`, never a regression nor a baseline).

It judges runs recorded by bench/compare_fpr.py (fresh device-runner processes on this host,
the local target; A = the book CNN at batch 5, B = batch 6: 20 % more work), as one lab
series night after night, through the lab's own `judge_and_record` into a real history:

    identical   every A run in recording order: each one flagged FAIL is a false regression
    slowdown    after the first W A runs (the baseline), every B run: each FAIL is a catch

Three judges side by side on the same runs:

    before                 main's band, no validity (re-implemented here from main)
    after                  this branch's lab (band + significance, suspect runs set aside)
    after, validity off    this branch's band + significance with the validity block removed
                           (what the test alone does on a host where every run is contended)

    .venv/bin/python bench/compare_fpr.py --pairs 20 --repeat 3 --min-s 0.3    # records runs
    .venv/bin/python bench/lab_false_regressions.py --load /tmp/edgeq-compare-fpr-runs.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METRICS = ("latency_p50", "latency_p90")


def old_fails(series: list[dict[str, float]], start: int) -> list[bool]:
    """main's regress.judge_metric for the band metrics, every run judged and, when it
    passes, added to the baseline (the last 10 passes; k = 3, min_rel = 7 %, 3 needed)."""
    passes: list[dict[str, float]] = []
    out = []
    for i, m in enumerate(series):
        failed = False
        for name in METRICS:
            base = [p[name] for p in passes[-10:]]
            if len(base) < 3:
                continue
            med = statistics.median(base)
            mad = statistics.median(abs(v - med) for v in base)
            half = max(3.0 * 1.4826 * mad, 0.07 * abs(med))
            failed |= m[name] > med + half
        if not failed:
            passes.append(m)
        if i >= start:
            out.append(failed)
    return out


def _record(i: int, doc: dict, keep_validity: bool):
    from edgeq import measure
    from edgeq.lab.records import ResultRecord

    run = dict(doc)
    if keep_validity:
        run["validity"] = measure.validity([], doc, 1)
    else:
        run.pop("validity", None)
    lat = run["latency_ms"]["invoke"]
    run_id, started = f"run-{i:04d}", f"2026-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"
    return ResultRecord(
        run_id=run_id, device="local", transport="local", address="", identity="local",
        model="model.tflite", status="pass", started_utc=started, finished_utc=started,
        metrics={"latency_p50": lat["p50"], "latency_p90": lat["p90"],
                 **{f"latency_{k}": lat[k] for k in ("steady_p50", "steady_p90") if k in lat}},
        checks=[{"name": "run", "kind": "run", "passed": True, "message": "ran"}],
        result={"run": run, "edgeq_version": "bench"},
    )  # fmt: skip


def new_statuses(
    docs: list[dict],
    start: int,
    keep_validity: bool,
    confirm: int = 0,
    pools: list[list[dict]] | None = None,
    seed: int = 0,
    steady: bool = True,
    adjacent: bool = False,
) -> list[str]:
    """Each doc a lab night through the lab's own judge. With `confirm` R, a night that
    would regress on a band metric is re-measured R times as the lab does; the re-runs are
    other recorded processes of the same setup (`pools[i]`: the runs night i may draw from):
    with `adjacent`, the R runs recorded right after it (what the lab's immediate re-runs
    meet: the same spell of the host's speed), else drawn without replacement, seeded."""
    from edgeq.lab import regress
    from edgeq.lab.history import History
    from edgeq.lab.scheduler import judge_and_record, to_confirm, with_confirmation

    rng = random.Random(seed)
    policy = regress.Policy(metrics=METRICS, confirm=confirm, steady=steady)
    out = []
    with tempfile.TemporaryDirectory() as tmp, History(Path(tmp) / "h.sqlite") as h:
        for i, doc in enumerate(docs):
            rec = _record(i, doc, keep_validity)
            h.start_run(rec.run_id, rec.started_utc)
            names = to_confirm(h, rec, policy) if confirm and pools else []
            if names:
                others = [d for d in pools[i] if d is not doc]
                if adjacent:  # the runs recorded right after this one, as the lab re-runs
                    at = next(k for k, d in enumerate(pools[i]) if d is doc)
                    draws = [pools[i][(at + 1 + k) % len(pools[i])] for k in range(confirm)]
                else:
                    draws = rng.sample(others, min(confirm, len(others)))
                with_confirmation(rec, [_record(i, d, keep_validity) for d in draws], names)
            rec = judge_and_record(h, rec, policy)
            if i >= start:
                out.append(rec.status)
    return out


def group(docs: list[dict], r: int) -> list[dict]:
    """Lab runs of `r` repetitions each (consecutive recorded processes): the median of
    their p50s and p90s, the worst validity (what `measure.combine` reports)."""
    if r == 1:
        return docs
    from edgeq import measure

    order = {"valid": 0, "suspect": 1, "invalid": 2}
    out = []
    for i in range(0, len(docs) - r + 1, r):
        part = docs[i : i + r]
        doc = dict(part[0])
        lat = dict(doc["latency_ms"]["invoke"])
        for k in ("p50", "p90", "steady_p50", "steady_p90"):
            lat[k] = statistics.median(d["latency_ms"]["invoke"][k] for d in part)
        doc["latency_ms"] = {**doc["latency_ms"], "invoke": lat}
        vals = [measure.validity([], d, 1) for d in part]
        doc["validity"] = max(vals, key=lambda v: order[v["verdict"]])
        out.append(doc)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--load", type=Path, default=Path("/tmp/edgeq-compare-fpr-runs.json"))
    ap.add_argument("--baseline", type=int, default=10, help="A runs before the B runs")
    ap.add_argument("--seed", type=int, default=0, help="of the shuffled order")
    ap.add_argument("--repeat", type=int, default=1, help="processes per lab run (--repeat)")
    ap.add_argument("--confirm", type=int, default=2,
                    help="[regression] confirm: re-runs drawn from the same setup's recorded "
                    "runs (0: leave the row out)")  # fmt: skip
    args = ap.parse_args()
    from bench.compare_fpr import with_steady

    runs = json.loads(args.load.read_text())
    a = group(with_steady(runs["A"]), args.repeat)
    b = group(with_steady(runs["B"]), args.repeat)
    metrics = [
        {"latency_p50": d["latency_ms"]["invoke"]["p50"],
         "latency_p90": d["latency_ms"]["invoke"]["p90"]} for d in a + b
    ]  # fmt: skip
    w = args.baseline
    rows = []
    for order in ("recorded", "shuffled"):
        # recorded: the runs in the order they were made (the ambient load drifts with
        # time); shuffled (seeded): the same runs in a random order, so that they are
        # exchangeable, which is what "identical" means to a test
        idx = list(range(len(a)))
        if order == "shuffled":
            random.Random(args.seed).shuffle(idx)
        aa = [a[i] for i in idx]
        ma = [metrics[i] for i in idx]
        ident_old = old_fails(ma, 0)
        slow_old = old_fails(ma[:w] + metrics[len(a) :], w)
        first_old = next((k for k, x in enumerate(slow_old) if x), None)
        rows.append(
            (order, "before (main: band alone)", sum(ident_old), sum(slow_old), "-",
             "-" if first_old is None else str(first_old + 1), len(slow_old) - sum(slow_old))
        )  # fmt: skip
        judges = [
            ("after, whole run (steady = false)", True, 0, False),
            ("after, steadiest stretch", True, 0, True),
            ("after, steadiest stretch, validity off", False, 0, True),
        ]
        if args.confirm:
            judges += [
                (f"after, whole run, confirm = {args.confirm}", True, args.confirm, False),
                (f"after, steadiest stretch, confirm = {args.confirm} (the lab's default)",
                 True, args.confirm, True),
            ]  # fmt: skip
        for label, keep, confirm, steady in judges:
            adj = order == "recorded"
            ident = new_statuses(aa, 0, keep, confirm, [aa] * len(aa), args.seed, steady, adj)
            slow_pools = [aa] * w + [b] * len(b)
            slow = new_statuses(aa[:w] + b, w, keep, confirm, slow_pools, args.seed, steady, adj)
            first = next((k for k, x in enumerate(slow) if x == "fail"), None)
            rows.append(
                (order, label, ident.count("fail"), slow.count("fail"),
                 f"{ident.count('suspect')} / {slow.count('suspect')}",
                 "-" if first is None else str(first + 1), slow.count("pass"))
            )  # fmt: skip
    loads = [d.get("contention", {}).get("load1_after") for d in a + b]
    loads = [x for x in loads if x is not None]
    others = [d.get("contention", {}).get("others_cores") for d in a + b]
    others = [x for x in others if x is not None]
    print(f"\nlab runs of --repeat {args.repeat} processes each")
    print(f"identical: {len(a)} runs of A in a row; slowdown: {len(b)} runs of B (+20 % work) "
          f"after {w} runs of A. Ambient load while recording: load1 "
          f"{min(loads, default=0):.1f}–{max(loads, default=0):.1f} on 2 cores, other "
          f"processes {statistics.median(others or [0]):.2f} cores (median)")  # fmt: skip
    print("| order of A | judge | identical runs flagged FAIL | B runs caught (FAIL) | "
          "B runs missed (pass) | first B run caught | suspect (ident / B) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for order, label, fi, fs, sus, first, missed in rows:
        print(f"| {order} | {label} | {fi}/{len(a)} | {fs}/{len(b)} | {missed}/{len(b)} | "
              f"{first} | {sus} |")  # fmt: skip
    print("Reproduce:\n  .venv/bin/python bench/compare_fpr.py --pairs 20 --repeat 3 --min-s 0.3"
          f"\n  .venv/bin/python bench/lab_false_regressions.py --load {args.load} "
          f"--baseline {w} --seed {args.seed} --repeat {args.repeat} "
          f"--confirm {args.confirm}")  # fmt: skip


if __name__ == "__main__":
    main()
