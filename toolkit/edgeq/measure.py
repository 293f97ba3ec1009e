"""Measuring so that a latency figure can be trusted, for any runner.

Around the runner's measurement (`Runner.measure`) this adds what people otherwise do by
hand on a benchmark board:

  * `--pin-governor G`: the CPU frequency governor is set for the run and the previous one
    restored afterwards — also after errors, Ctrl-C and SIGTERM (a `finally`); where the
    device user may not write it, a warning names the command;
  * `--cooldown-to C`: before each measurement, wait (at most `--cooldown-max-s`) until the
    hottest thermal zone is at most C °C; the wait is reported;
  * sampling: every thermal zone, every core's frequency, the governor and (on a Pi) the
    firmware's throttle flags, read by the device's shell before and after each run (the
    runner may add its own samples: before warm-up, after warm-up, after the steady state);
    from them each run gets a `validity` block — throttled_during_run, temperature_rise_c,
    frequency_changed, governor, and a verdict valid | suspect | invalid with its reasons,
    in the spirit of MLPerf's run rules;
  * `--repeat N`: the steady state measured N times, each in a fresh interpreter (a new
    runner process), summarised as the median of each statistic with a bootstrap 95 %
    interval (`ci_low`, `ci_high`); with N ≥ 3 the budget judges the interval's upper end;
  * `--threads 1,2,4`: each setting measured; the document keeps one block per setting,
    flags a setting that makes no difference (some runtimes ignore num_threads), and the
    verdict uses the best one (it says which).

A sysfs root for tests: the device environment variable EDGEQ_SYSFS_ROOT (set through the
target's `env`) is prepended to every /sys path read or written here.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, replace
from typing import Any

from .errors import DeviceError
from .progress import Progress, say
from .results import STAT_KEYS, STEADY_KEYS
from .runners import Job, Measurement, Runner
from .settings import RunSettings
from .stats import ci_of_median
from .targets import Target

SYS = '"${EDGEQ_SYSFS_ROOT:-}"'
THROTTLE_FILE = "/sys/devices/platform/soc/soc:firmware/get_throttled"
#: A thread setting within this of the single-thread figure "has no effect".
NO_EFFECT_REL = 0.03
#: Temperature rise over one run: suspect from 3 °C, invalid from 10 °C.
RISE_SUSPECT_C, RISE_INVALID_C = 3.0, 10.0
#: A core's frequency moving by more than this between samples counts as a change.
FREQ_CHANGE_REL = 0.05
#: Pi firmware flags: now-bits 0..3, occurred-bits 16..19.
THROTTLE_BITS = {0: "under-voltage", 1: "frequency capped", 2: "throttled", 3: "soft temp limit"}
#: Contention: during the steady state, other processes took at least this share of the
#: cores the run needed (what they used beyond the cores the run left free, or the part of
#: its core a one-thread run did not get; see `contention_block`). docs/contention.md has
#: the measurements behind it.
CONTENDED_SHARE = 0.25
#: A steady state shorter than this is too short for /proc's clock ticks (10 ms) to say.
CONTENTION_MIN_WALL_S = 0.2
#: Dispersion: p99 more than this many times p50, or a coefficient of variation above
#: DISPERSED_CV (docs/contention.md).
DISPERSED_P99_P50 = 4.0
DISPERSED_CV = 2.0
#: Dispersion is judged from this many samples (a p99 of fewer is little more than the
#: max) and a steady state of at least CONTENTION_MIN_WALL_S.
DISPERSION_MIN_SAMPLES = 200
#: Sarle's bimodality coefficient above this (0.555 for a uniform law) is reported.
BIMODAL_COEFFICIENT = 0.555


# --------------------------------------------------------------------------- sampling

_SAMPLE_SCRIPT = (
    f"for z in {SYS}/sys/class/thermal/thermal_zone*; do "
    '[ -r "$z/temp" ] && echo "temp ${z##*/} $(cat "$z/temp" 2>/dev/null)"; done; '
    f"for c in {SYS}/sys/devices/system/cpu/cpu[0-9]*; do "
    'f="$c/cpufreq/scaling_cur_freq"; [ -r "$f" ] && echo "freq ${c##*/} $(cat "$f")"; '
    'g="$c/cpufreq/scaling_governor"; [ -r "$g" ] && echo "gov ${c##*/} $(cat "$g")"; done; '
    f't={SYS}{THROTTLE_FILE}; [ -r "$t" ] && echo "throttled $(cat "$t")"; '
    # what competes for the CPU: per-core ticks, the load, a clock and its tick rate
    'grep "^cpu[0-9]" /proc/stat 2>/dev/null; echo "uptime $(cut -d" " -f1 /proc/uptime '
    '2>/dev/null)"; echo "loadavg $(cut -d" " -f1 /proc/loadavg 2>/dev/null)"; '
    'echo "hz $(getconf CLK_TCK 2>/dev/null)"; true'
)


def sample(target: Target, phase: str) -> dict[str, Any]:
    """Temperatures (°C per zone), frequencies (MHz per core), governors and the throttle
    flags, read by the device's shell in one command."""
    res = target.run(_SAMPLE_SCRIPT, timeout=30, check=False)
    out: dict[str, Any] = {"phase": phase, "time": time.time(), "temps_c": {}, "freqs_mhz": {}}
    governors: dict[str, str] = {}
    cpu: dict[str, Any] = {"cores": {}}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "temp" and parts[2].lstrip("-").isdigit():
            out["temps_c"][parts[1]] = int(parts[2]) / 1000
        elif len(parts) == 3 and parts[0] == "freq" and parts[2].isdigit():
            out["freqs_mhz"][parts[1]] = int(parts[2]) / 1000
        elif len(parts) == 3 and parts[0] == "gov":
            governors[parts[1]] = parts[2]
        elif len(parts) == 2 and parts[0] == "throttled":
            # "0x50005" (the firmware file) or "throttled=0x50005" (vcgencmd's answer)
            m = re.search(r"0x[0-9a-fA-F]+", parts[1]) or re.fullmatch(r"[0-9a-fA-F]+", parts[1])
            if m:
                out["throttled"] = int(m.group(0), 16)
        elif len(parts) >= 9 and re.fullmatch(r"cpu\d+", parts[0]) and parts[1].isdigit():
            v = [int(x) for x in parts[1:9]]
            cpu["cores"][parts[0]] = {"busy": v[0] + v[1] + v[2] + v[5] + v[6], "steal": v[7]}
        elif len(parts) == 2 and parts[0] in ("uptime", "loadavg", "hz"):
            try:
                cpu[{"uptime": "mono_s", "loadavg": "load1", "hz": "hz"}[parts[0]]] = float(
                    parts[1]
                )
            except ValueError:
                pass
    out["governor"] = ",".join(sorted(set(governors.values()))) or None
    if cpu["cores"] and "mono_s" in cpu:
        out["cpu"] = cpu
    return out


def _throttle_words(value: int) -> list[str]:
    return [name for bit, name in THROTTLE_BITS.items() if value >> bit & 1]


def contention_block(
    run: dict[str, Any], threads: int | None = None, samples: list[dict[str, Any]] | None = None
) -> dict[str, Any] | None:
    """The competition for the CPU during the steady state, with `contended` and the share
    of the run's cores the others used: from the runner's own reading (`contention`: the
    Python runner ≥ 1.3 around its steady state; the native runner's shell around
    benchmark_model, `window: run`), else from the shell samples before and after the run
    with the runner's own use estimated as `threads` busy cores."""
    got = run.get("contention")
    if isinstance(got, dict):
        block = dict(got)
    else:
        cpus = [s.get("cpu") for s in samples or [] if isinstance(s, dict)]
        cpus = [c for c in cpus if isinstance(c, dict) and c.get("cores")]
        if len(cpus) < 2:
            return None
        block = _shell_contention(cpus[0], cpus[-1], threads or 1)
    own, others, wall = block.get("self_cores"), block.get("others_cores"), block.get("wall_s")
    if not isinstance(got, dict) or block.get("window") == "run":
        # around the whole run: judged only when its steady state alone is long enough
        steady = (run.get("phases_ms") or {}).get("steady_state")
        wall = min(wall or 0.0, (steady or 0.0) / 1000)
    block["contended"] = None
    if others is None or not wall or wall < CONTENTION_MIN_WALL_S:
        block["note"] = (
            f"not judged: steady state {wall or 0:.2f} s, need {CONTENTION_MIN_WALL_S:g} s"
            if others is not None
            else "not judged: /proc gave no CPU times"
        )
        return block
    # the cores the run needs: its threads (else what it used, at least one). Two views of
    # what the others took from it: what they used beyond the cores the run left free, and
    # (a one-thread runner busy-loops its steady state, so it needs a whole core) the share
    # of a core the run did not get; the larger counts
    used = float(threads) if threads else max(1.0, round(float(own or 0.0)))
    avail = float(block.get("cores_available") or used)
    used = min(used, avail)
    beyond = max(0.0, others - (avail - used)) / used
    deficit = 0.0
    if used == 1.0 and own is not None and "estimated" not in str(block.get("method")):
        deficit = max(0.0, 1.0 - float(own))
    share = max(beyond, deficit)
    block["run_cores"] = used
    block["run_deficit"] = round(deficit, 3)
    block["others_share"] = round(share, 3)
    block["contended"] = share >= CONTENDED_SHARE
    return block


def _shell_contention(before: dict[str, Any], after: dict[str, Any], threads: int) -> dict:
    wall = after["mono_s"] - before["mono_s"]
    hz = before.get("hz") or 100.0
    cores = sorted(set(before["cores"]) & set(after["cores"]))
    busy = sum(after["cores"][c]["busy"] - before["cores"][c]["busy"] for c in cores) / hz
    steal = sum(after["cores"][c]["steal"] - before["cores"][c]["steal"] for c in cores) / hz
    own = float(min(threads, len(cores) or 1))
    return {
        "wall_s": round(wall, 4),
        "cores_available": len(cores) or None,
        "self_cores": own,
        "others_cores": round(max(0.0, busy / wall - own), 3) if wall > 0 else None,
        "steal_cores": round(steal / wall, 3) if wall > 0 else None,
        "load1_before": before.get("load1"),
        "load1_after": after.get("load1"),
        "method": f"/proc/stat around the whole run; the runner's own use taken as {own:g} "
        "busy cores (estimated: a native runner reports no CPU time of its own)",
    }


def dispersion_block(run: dict[str, Any]) -> dict[str, Any] | None:
    """How spread the steady-state latencies are: p99/p50, the coefficient of variation and
    Sarle's bimodality coefficient of the kept samples; `dispersed` when p99/p50 or the CV is
    beyond its bound."""
    lat = (run.get("latency_ms") or {}).get("invoke") or {}
    p50, p99, mean, std = (lat.get(k) for k in ("p50", "p99", "mean", "std"))
    if not p50 or p99 is None:
        return None
    ratio = p99 / p50
    cv = std / mean if std is not None and mean else None
    samples = (run.get("latency_samples_ms") or {}).get("invoke") or []
    bc = bimodality_coefficient(samples)
    why = []
    steady_s = ((run.get("phases_ms") or {}).get("steady_state") or 0) / 1000
    judged = (lat.get("count") or 0) >= DISPERSION_MIN_SAMPLES and (
        steady_s >= CONTENTION_MIN_WALL_S or not run.get("phases_ms")
    )
    if judged and ratio > DISPERSED_P99_P50:
        why.append(f"p99/p50 {ratio:.1f} > {DISPERSED_P99_P50:g}")
    if judged and cv is not None and cv > DISPERSED_CV:
        why.append(f"CV {cv:.2f} > {DISPERSED_CV:g}")
    return {
        "judged": judged,
        "p99_over_p50": round(ratio, 3),
        "cv": None if cv is None else round(cv, 3),
        "bimodality_coefficient": None if bc is None else round(bc, 3),
        "bimodal": None if bc is None else bc > BIMODAL_COEFFICIENT,
        "dispersed": bool(why),
        "why": why,
    }


def bimodality_coefficient(values: list[float]) -> float | None:
    """Sarle's b = (g² + 1) / (κ + 3(n−1)²/((n−2)(n−3))) with sample skewness g and excess
    kurtosis κ; None for fewer than 4 values or no spread."""
    n = len(values)
    if n < 4:
        return None
    mean = sum(values) / n
    m2 = sum((v - mean) ** 2 for v in values) / n
    if m2 <= 0:
        return None
    m3 = sum((v - mean) ** 3 for v in values) / n
    m4 = sum((v - mean) ** 4 for v in values) / n
    g = m3 / m2**1.5
    k = m4 / m2**2 - 3
    return (g * g + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def _steady_reasons(
    run: dict[str, Any], threads: int | None, samples: list[dict[str, Any]]
) -> tuple[list[str], dict]:
    """Suspect reasons from the run document itself: contention, dispersion, a capped
    timing loop; and the blocks that back them."""
    reasons: list[str] = []
    extra: dict[str, Any] = {}
    con = contention_block(run, threads, samples)
    if con is not None:
        extra["contention"] = con
        if con.get("contended"):
            reasons.append(
                f"contended: other processes kept {con['others_cores']:.2f} of "
                f"{con.get('cores_available') or '?'} cores busy, {con['others_share']:.0%} of "
                f"the {con['run_cores']:g} the run needed (suspect from {CONTENDED_SHARE:.0%}); "
                f"the run got {con.get('self_cores') or 0:.2f} cores; load "
                f"{con.get('load1_after') if con.get('load1_after') is not None else '?'}"
            )
    disp = dispersion_block(run)
    if disp is not None:
        extra["dispersion"] = disp
        if disp["dispersed"]:
            reasons.append(f"dispersed: {', '.join(disp['why'])}")
    st = run.get("settings") or {}
    if st.get("steady_state_capped"):
        lat = (run.get("latency_ms") or {}).get("invoke") or {}
        secs = ((run.get("phases_ms") or {}).get("steady_state") or 0) / 1000
        min_s = st.get("min_s")
        below = f", below --min-s {min_s:g}" if min_s and secs < min_s else ""
        extra["capped"] = True
        reasons.append(
            f"timing capped at {lat.get('count', st.get('max_samples')):,} samples after "
            f"{secs:.2f} s{below}: raise --max-samples"
        )
    return reasons, extra


def validity(
    samples: list[dict[str, Any]], run: dict[str, Any] | None = None, threads: int | None = None
) -> dict[str, Any]:
    """The validity block of one run from its samples (oldest first) and, given the run
    document, what the steady state itself shows (contention, dispersion, a capped loop)."""
    reasons_invalid: list[str] = []
    reasons_suspect: list[str] = []
    extra: dict[str, Any] = {}
    if run is not None:
        reasons_suspect, extra = _steady_reasons(run, threads, samples)
    flags = [s["throttled"] for s in samples if s.get("throttled") is not None]
    throttled = False
    if flags:
        now = [_throttle_words(f) for f in flags]
        occurred_new = (flags[-1] >> 16 & 0xF) & ~(flags[0] >> 16 & 0xF)
        if any(now) or occurred_new:
            throttled = True
            words = sorted({w for ws in now for w in ws} | set(_throttle_words(occurred_new)))
            reasons_invalid.append(
                f"throttled during the run ({', '.join(words)}; {hex(flags[-1])})"
            )
    first_t = samples[0]["temps_c"] if samples else {}
    last_t = samples[-1]["temps_c"] if samples else {}
    rises = [last_t[z] - first_t[z] for z in first_t if z in last_t]
    rise = max(rises) if rises else None
    if rise is not None and rise >= RISE_INVALID_C:
        reasons_invalid.append(f"temperature rose by {rise:.1f} °C")
    elif rise is not None and rise >= RISE_SUSPECT_C:
        reasons_suspect.append(f"temperature rose by {rise:.1f} °C")
    changed: list[str] = []
    cores = set().union(*(s["freqs_mhz"] for s in samples)) if samples else set()
    for core in sorted(cores):
        seen = [s["freqs_mhz"][core] for s in samples if core in s["freqs_mhz"]]
        if len(seen) >= 2 and max(seen) > min(seen) * (1 + FREQ_CHANGE_REL):
            changed.append(f"{core} {min(seen):g}–{max(seen):g} MHz")
    governor = next((s["governor"] for s in samples if s.get("governor")), None)
    fixed = governor in ("performance", "userspace", "powersave")
    if changed:
        text = f"CPU frequency changed during the run ({'; '.join(changed[:4])})"
        (reasons_invalid if fixed else reasons_suspect).append(
            text if fixed else f"{text}; governor {governor} scales it"
        )
    if governor and governor != "performance" and not changed:
        reasons_suspect.append(f"governor is {governor}, not performance")
    verdict = "invalid" if reasons_invalid else "suspect" if reasons_suspect else "valid"
    return {
        "verdict": verdict,
        "reasons": reasons_invalid + reasons_suspect,
        "throttled_during_run": throttled,
        "temperature_rise_c": rise,
        "frequency_changed": bool(changed),
        "governor": governor,
        **extra,
        "samples": samples,
    }


# --------------------------------------------------------------------------- cool-down


def hottest(target: Target) -> float | None:
    temps = sample(target, "cooldown")["temps_c"]
    return max(temps.values()) if temps else None


def cooldown(
    target: Target, to_c: float, max_s: float, progress: Progress | None = None, poll_s=2.0
) -> dict[str, Any]:
    """Wait until the hottest zone is at most `to_c` °C (at most `max_s` seconds)."""
    t0 = time.monotonic()
    start = temp = hottest(target)
    if temp is None:
        return {"target_c": to_c, "waited_s": 0.0, "reached": None, "note": "no thermal zone"}
    told = False
    while temp is not None and temp > to_c and time.monotonic() - t0 < max_s:
        if not told:
            say(progress, f"cooling down: {temp:.1f} °C, waiting for {to_c:g} °C")
            told = True
        time.sleep(min(poll_s, max(0.0, max_s - (time.monotonic() - t0))))
        temp = hottest(target)
    reached = temp is not None and temp <= to_c
    return {
        "target_c": to_c,
        "start_c": start,
        "end_c": temp,
        "waited_s": round(time.monotonic() - t0, 3),
        "reached": reached,
    }


# --------------------------------------------------------------------------- governor


@dataclass
class GovernorPin:
    """The governor set for a run, and what to put back."""

    wanted: str
    previous: dict[str, str]
    pinned: bool = False
    warning: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "wanted": self.wanted,
            "previous": self.previous,
            "pinned": self.pinned,
            "warning": self.warning or None,
        }


_GOV_READ = (
    f"for g in {SYS}/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor; do "
    '[ -r "$g" ] && echo "$g $(cat "$g")"; done; true'
)


def pin_governor(target: Target, wanted: str) -> GovernorPin:
    """Set every core's governor to `wanted` (remembering the old ones); a device user who
    may not write them gets a warning with the command, not an error."""
    res = target.run(_GOV_READ, timeout=30, check=False)
    previous = dict(ln.rsplit(" ", 1) for ln in res.stdout.splitlines() if " " in ln)
    pin = GovernorPin(wanted, previous)
    fix = (
        f"echo {wanted} | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor, "
        f"or run edgeq's device user as one that may write it"
    )
    if not previous:
        pin.warning = "the device exposes no cpufreq governor; nothing pinned"
        return pin
    write = "; ".join(f"echo {shlex.quote(wanted)} > {shlex.quote(path)}" for path in previous)
    done = target.run(write, timeout=30, check=False)
    if done.exit_code != 0:
        pin.warning = f"could not set the governor to {wanted} ({done.stderr.strip()[:120]}): {fix}"
        restore_governor(target, pin)
        return pin
    pin.pinned = True
    return pin


def restore_governor(target: Target, pin: GovernorPin) -> None:
    if not pin.previous:
        return
    write = "; ".join(f"echo {shlex.quote(g)} > {shlex.quote(p)}" for p, g in pin.previous.items())
    target.run(write + "; true", timeout=30, check=False)


# --------------------------------------------------------------------------- summaries


def _stats(doc: dict[str, Any]) -> dict[str, Any]:
    return (doc.get("latency_ms") or {}).get("invoke") or {}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The repetitions of one setting: per run its statistics, per statistic the median of
    the runs with a bootstrap 95 % interval."""
    keys = STAT_KEYS + STEADY_KEYS
    per_run = [{k: _stats(d).get(k) for k in keys if _stats(d).get(k) is not None} for d in runs]
    block: dict[str, Any] = {"n": len(runs), "runs": per_run}
    for key in keys:
        if key in ("count", "steady_window"):
            continue
        values = [r[key] for r in per_run if r.get(key) is not None]
        if values:
            iv = ci_of_median(values)
            block[key] = {"median": iv.estimate, "ci_low": iv.ci_low, "ci_high": iv.ci_high}
    block["method"] = "median of the repetitions; 95 % percentile-bootstrap interval"
    return block


def _figure(block: dict[str, Any], key: str) -> float | None:
    return (block.get(key) or {}).get("median")


def repeat_runs(
    target: Target,
    runner: Runner,
    job: Job,
    progress: Progress | None = None,
) -> Measurement:
    """Measure `job` with `runner`, `repeat` times per thread setting, with cool-down,
    governor pinning and validity sampling; one combined Measurement comes back (what the
    host still has to judge in it is `hostjudge`'s)."""
    s = job.settings
    plans = s.thread_settings
    simple = len(plans) == 1 and s.repeat == 1 and s.cooldown_to is None and not s.pin_governor
    per_setting: dict[int, list[Measurement]] = {t: [] for t in plans}
    cooldowns: list[dict[str, Any]] = []
    with target:
        pin = pin_governor(target, s.pin_governor) if s.pin_governor else None
        if pin and pin.warning:
            say(progress, f"warning: {pin.warning}")
        try:
            for t in plans:
                for rep in range(s.repeat):
                    if s.cooldown_to is not None:
                        cooldowns.append(
                            cooldown(target, s.cooldown_to, s.cooldown_max_s, progress)
                        )
                    first = not any(per_setting.values())
                    one = job.settings.with_(threads=t, repeat=1)
                    if not simple:
                        say(progress, f"threads {t}, run {rep + 1} of {s.repeat}")
                    before = _safe_sample(target, "before")
                    this = replace(job.first_only(first), settings=one)
                    got = runner.measure(target, this, progress)
                    after = _safe_sample(target, "after")
                    inner = got.run.get("sampling") or []
                    samples = [x for x in (before, *inner, after) if x]
                    got.run["validity"] = validity(samples, got.run, t)
                    per_setting[t].append(got)
        finally:
            if pin is not None and pin.pinned:
                try:
                    restore_governor(target, pin)
                except (DeviceError, OSError):
                    pass
    return combine(per_setting, s, cooldowns, pin)


def _safe_sample(target: Target, phase: str) -> dict[str, Any] | None:
    try:
        return sample(target, phase)
    except DeviceError:
        return None


def _merged_reasons(per_run: list[list[str]]) -> list[str]:
    """The reasons of the repetitions, once each: a kind whose figures differ from run to
    run (contended, dispersed, timing capped) is shown with its first figures and in how
    many of the runs it happened."""
    grouped: dict[str, list[str]] = {}
    for reasons in per_run:
        for r in reasons:
            kind = r.split(":", 1)[0] if r.startswith(("contended", "dispersed")) else r
            kind = "timing capped" if r.startswith("timing capped") else kind
            grouped.setdefault(kind, []).append(r)
    out = []
    for rs in grouped.values():
        distinct = list(dict.fromkeys(rs))
        if len(distinct) == 1:
            out.append(distinct[0])
        else:
            out.append(f"{distinct[0]} (in {len(rs)} of the {len(per_run)} runs)")
    return out


def combine(
    per_setting: dict[int, list[Measurement]],
    s: RunSettings,
    cooldowns: list[dict[str, Any]],
    pin: GovernorPin | None,
) -> Measurement:
    """One Measurement: the best thread setting's first run as the document, plus the
    repetition summary, the per-setting blocks, the worst validity and the cool-downs."""
    blocks = {t: summarise([m.run for m in ms]) for t, ms in per_setting.items()}
    judged = "p50"

    def score(t: int) -> float:
        v = _figure(blocks[t], judged)
        return v if v is not None else float("inf")

    best = min(per_setting, key=score)
    chosen = per_setting[best]
    doc = dict(chosen[0].run)
    accuracy_doc = next(
        (m.run for ms in per_setting.values() for m in ms if m.run.get("accuracy")), None
    )
    if accuracy_doc is not None and not doc.get("accuracy"):
        doc["accuracy"] = accuracy_doc["accuracy"]
        doc["accuracy_source"] = accuracy_doc.get("accuracy_source")
    order = {"valid": 0, "suspect": 1, "invalid": 2}
    vals = [m.run["validity"] for m in chosen if m.run.get("validity")]
    if vals:
        worst = max(vals, key=lambda v: order[v["verdict"]])
        reasons = _merged_reasons([v["reasons"] for v in vals])
        doc["validity"] = {**worst, "reasons": reasons, "runs": [v["verdict"] for v in vals]}
    if s.repeat > 1:
        doc["repeat"] = blocks[best]
        samples = [
            x for m in chosen for x in (m.run.get("latency_samples_ms") or {}).get("invoke") or []
        ]
        if samples:
            doc["latency_samples_ms"] = {"invoke": samples}
    if len(per_setting) > 1:
        base = _figure(blocks[min(per_setting)], judged)
        rows = []
        for t, block in blocks.items():
            fig = _figure(block, judged)
            no_effect = (
                t != min(per_setting)
                and base is not None
                and fig is not None
                and abs(fig - base) <= NO_EFFECT_REL * base
            )
            rows.append(
                {
                    "threads": t,
                    "latency_ms": _stats(per_setting[t][0].run),
                    "repeat": block,
                    "no_effect": no_effect,
                    "validity": (per_setting[t][0].run.get("validity") or {}).get("verdict"),
                }
            )
        flagged = [r["threads"] for r in rows if r["no_effect"]]
        doc["threads_sweep"] = {
            "settings": rows,
            "best": best,
            "judged_by": judged,
            "no_effect": flagged,
            "note": (
                f"threads {', '.join(map(str, flagged))} changed {judged} by less than "
                f"{NO_EFFECT_REL:.0%} vs {min(per_setting)}: the runtime may ignore num_threads"
                if flagged
                else ""
            ),
        }
    if cooldowns:
        doc["cooldown"] = cooldowns
        missed = [c for c in cooldowns if c.get("reached") is False]
        if missed and doc.get("validity"):
            c = missed[0]
            why = (
                f"did not cool down to {c['target_c']:g} °C within {s.cooldown_max_s:g} s "
                f"(hottest {c['end_c']:.1f} °C)"
            )
            v = doc["validity"]
            v["reasons"] = [*v["reasons"], why]
            if v["verdict"] == "valid":
                v["verdict"] = "suspect"
    if pin is not None:
        doc["governor_pin"] = pin.to_dict()
    doc.setdefault("settings", {})
    doc["settings"] = {**doc["settings"], "repeat": s.repeat, "threads": best}
    all_ms = [m for ms in per_setting.values() for m in ms]
    first = next((m for m in all_ms if m.outputs or m.outputs_error or m.host_accuracy), None)
    return Measurement(
        run=doc,
        bytes_sent=all_ms[-1].bytes_sent,  # the target's running totals
        files=all_ms[-1].files,
        runner_process_s=sum(m.runner_process_s for m in all_ms),
        total_s=sum(m.total_s for m in all_ms),
        device_measure_s=sum(m.device_seconds() for m in all_ms),
        workdir=chosen[0].workdir,
        kept=chosen[0].kept,
        transfer_method=all_ms[-1].transfer_method,
        # accuracy and agreement are the first run's (see Job.first_only)
        outputs=first.outputs if first else None,
        outputs_error=first.outputs_error if first else None,
        host_accuracy=first.host_accuracy if first else None,
    )
