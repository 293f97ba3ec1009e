"""Read the log of TFLite/LiteRT's native `benchmark_model` into numbers.

The tool prints (through TFLITE_LOG, so on stderr, lines prefixed `INFO: ` in releases
since about 2.13, bare before that, `I tflite  :` when read from logcat):

* the parameters that were set, `Num threads: [4]`;
* `The input model file size (MB): 4.27635` and `Initialized session in 0.53ms.`;
* one block per phase, warm-up first, then the timed runs::

      Running benchmark for at least 50 iterations and at least 1 seconds but ...
      count=50 first=121183 curr=115199 min=111222 max=121324 avg=116066 std=1906

  (microseconds; `count=1 curr=V` or `count=N curr=V(all same)` when every run took the
  same time; LiteRT's builds append `p5=114 median=119 p95=153`, older ones do not);
* `Inference timings in us: Init: 530, First inference: 124020, Warmup (avg): 117225,
  Inference (avg): 116066` (older: `Average inference timings in us: Warmup: ..., Init:
  ..., Inference: ...`);
* memory: `Memory footprint delta from the start of the tool (MB): init=3.75
  overall=12.1914` (older: `Peak memory footprint (MB): init=0 overall=12.8672`) and, with
  --report_peak_memory_footprint, `Overall peak memory footprint (MB) via periodic
  monitoring: N`;
* `Created TensorFlow Lite XNNPACK delegate for CPU.` when XNNPACK runs the model, and
  `Unconsumed cmdline flags: --use_xnnpack=true` from a build without it;
* with --enable_op_profiling, tab-separated tables under `===== Run Order =====`,
  `===== Top by Computation Time =====` and `===== Summary by node type =====`.

Only what the log states is returned: a figure the tool did not print stays None.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

_LOGCAT = re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+[VDIWEF]\s+\S+\s*:\s?")
_LEVEL = re.compile(r"^(INFO|WARN|WARNING|ERROR|VERBOSE|DEBUG): ?")
_PARAM = re.compile(r"^(?P<key>[#A-Za-z][^:\[\]]*?)\s*:\s*\[(?P<value>.*)\]$")
_RUN_BLOCK = re.compile(
    r"^Running benchmark for at least (?P<runs>\d+) iterations and at least "
    r"(?P<secs>[\d.eE+-]+) seconds"
)
_STAT = re.compile(r"^count=\d+")
_TABLE = re.compile(r"^=+ (?P<title>.+?) =+$")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


@dataclass
class Stat:
    """One `count=... first=... curr=... min=... max=... avg=... std=...` line (microseconds)."""

    count: int
    first: float | None = None
    curr: float | None = None
    min: float | None = None
    max: float | None = None
    avg: float | None = None
    std: float | None = None
    percentiles: dict[str, float] = field(default_factory=dict)
    all_same: bool = False

    def to_ms(self) -> dict[str, Any]:
        """edgeq's latency statistics in ms: only the figures the line gives."""
        out: dict[str, Any] = {"count": self.count}
        for key, value in (("min", self.min), ("max", self.max), ("mean", self.avg)):
            if value is not None:
                out[key] = value / 1000.0
        if self.std is not None:
            out["std"] = self.std / 1000.0
        for name, value in self.percentiles.items():
            out[name] = value / 1000.0
        return out


@dataclass
class BenchmarkLog:
    """Everything a `benchmark_model` log states, in the tool's units."""

    params: dict[str, str] = field(default_factory=dict)
    model_size_mb: float | None = None
    init_ms: float | None = None
    #: (min runs, min seconds, statistics or None for `count=0`) per phase, in order
    runs: list[tuple[int | None, float | None, Stat | None]] = field(default_factory=list)
    timings_us: dict[str, float] = field(default_factory=dict)
    memory_mb: dict[str, float] = field(default_factory=dict)
    delegates: list[dict[str, Any]] = field(default_factory=list)
    op_profile: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: flags the binary did not know (`Unconsumed cmdline flags: --use_xnnpack=true`)
    unconsumed_flags: list[str] = field(default_factory=list)
    #: the tool said it created the XNNPACK delegate for the CPU
    xnnpack_created: bool = False

    @property
    def xnnpack(self) -> bool:
        """Did XNNPACK run the model? Only when the log says the tool created (or applied)
        it: a build without XNNPACK leaves `--use_xnnpack` unconsumed and creates none."""
        return self.xnnpack_created or any(
            str(d.get("name", "")).upper() == "XNNPACK" and d.get("executes") != "none"
            for d in self.delegates
        )

    @property
    def warmup(self) -> Stat | None:
        """The warm-up block's statistics (the tool always runs it first)."""
        return self.runs[0][2] if self.runs else None

    @property
    def inference(self) -> Stat | None:
        """The timed runs' statistics (the second block; absent if the tool stopped early)."""
        return self.runs[1][2] if len(self.runs) >= 2 else None

    @property
    def first_inference_us(self) -> float | None:
        """The first warm-up run (the tool prints 0 there when no warm-up run happened)."""
        if self.runs and self.warmup is None:
            return None
        if "first_inference" in self.timings_us:
            return self.timings_us["first_inference"]
        warm = self.warmup
        return warm.first if warm is not None and warm.first is not None else None


def clean_line(line: str) -> tuple[str, str]:
    """(level, text) with logcat and `INFO: ` prefixes removed."""
    line = _LOGCAT.sub("", line.rstrip("\r\n"))
    m = _LEVEL.match(line)
    level = ""
    if m:
        level = m.group(1)
        line = line[m.end() :]
    return level, line


def parse_stat(text: str) -> Stat | None:
    """A Stat from `count=...` (None for `count=0`, which is what an empty phase prints)."""
    text = text.strip()
    same = "(all same)" in text
    values = dict(re.findall(rf"(\w+)=({_NUMBER}|nan|-?inf)", text.replace("(all same)", "")))
    if "count" not in values or int(float(values["count"])) == 0:
        return None
    num = {k: float(v) for k, v in values.items()}
    stat = Stat(count=int(num["count"]), first=num.get("first"), curr=num.get("curr"))
    if "min" in num and "max" in num:
        stat.min, stat.max = num["min"], num["max"]
        stat.avg, stat.std = num.get("avg"), num.get("std")
    elif stat.curr is not None:
        # The tool prints `count=N curr=V` when every run took V (and count=1 is one run).
        stat.all_same = True
        stat.min = stat.max = stat.avg = stat.curr
        stat.std = 0.0
    for src, dst in (("p5", "p5"), ("median", "p50"), ("p95", "p95")):
        if src in num and math.isfinite(num[src]):
            stat.percentiles[dst] = num[src]
    stat.all_same = stat.all_same or same
    return stat


def _timings(text: str) -> dict[str, float]:
    """`Inference timings in us: Init: 530, First inference: 124020, ...` as a dict."""
    names = {
        "init": "init",
        "first inference": "first_inference",
        "warmup (avg)": "warmup_avg",
        "warmup": "warmup_avg",
        "inference (avg)": "inference_avg",
        "inference": "inference_avg",
        "no stats": "inference_avg",
    }
    body = text.split("timings in us:", 1)[1]
    out: dict[str, float] = {}
    for part in body.split(","):
        if ":" not in part:
            continue
        key, value = part.rsplit(":", 1)
        key = key.strip().lower()
        try:
            number = float(value.strip())
        except ValueError:
            continue
        if key in names and math.isfinite(number):
            out[names[key]] = number
    return out


def _delegate(text: str) -> dict[str, Any] | None:
    m = re.match(
        r"Explicitly applied (?P<name>\S+) delegate, and the model graph will be "
        r"(?P<how>completely|partially) executed by the delegate"
        r"(?: w/ (?P<kernels>\d+) delegate kernels)?",
        text,
    )
    if m:
        return {
            "name": m.group("name"),
            "executes": "all" if m.group("how") == "completely" else "part",
            "kernels": int(m.group("kernels")) if m.group("kernels") else None,
        }
    m = re.match(
        r"Though (?P<name>\S+) delegate is explicitly applied, the model graph will not be "
        r"executed by the delegate",
        text,
    )
    if m:
        return {"name": m.group("name"), "executes": "none", "kernels": 0}
    return None


def _cell(value: str) -> Any:
    v = value.strip()
    if v.startswith("[") and v.endswith("]"):
        return v[1:-1]
    try:
        return float(v.rstrip("%"))
    except ValueError:
        return v


_COLUMN_NAMES = {
    "node type": "type",
    "start": "start_ms",
    "first": "first_ms",
    "avg ms": "avg_ms",
    "%": "percent",
    "avg %": "percent",
    "cdf%": "cdf_percent",
    "cdf %": "cdf_percent",
    "mem kb": "mem_kb",
    "times called": "times_called",
    "name": "name",
    "count": "count",
}


def _table(header: str, rows: list[str]) -> list[dict[str, Any]]:
    cols = [
        _COLUMN_NAMES.get(c.strip().lower(), c.strip().lower())
        for c in re.findall(r"\[([^\]]+)\]", header)
    ]
    out = []
    for row in rows:
        cells = [c for c in row.split("\t") if c.strip()]
        if len(cells) != len(cols):
            continue
        entry = {c: _cell(v) for c, v in zip(cols, cells, strict=True)}
        for key in ("count", "times_called"):
            if isinstance(entry.get(key), float):
                entry[key] = int(entry[key])
        out.append(entry)
    return out


def parse_output(text: str) -> BenchmarkLog:
    """Parse a whole `benchmark_model` log (stdout and stderr together, in order)."""
    log = BenchmarkLog()
    pending: tuple[int | None, float | None] | None = None
    profile_context = "inference"
    tables: dict[str, list[dict[str, Any]]] = {}
    nodes_executed: int | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        level, line = clean_line(lines[i])
        i += 1
        stripped = line.strip()
        if not stripped:
            continue
        if level == "ERROR":
            log.errors.append(stripped)
        elif level in ("WARN", "WARNING"):
            log.warnings.append(stripped)
        if "Profiling Info for Benchmark Initialization" in stripped:
            profile_context = "initialization"
            continue
        if "Profiling Info for Regular Benchmark Runs" in stripped:
            profile_context = "inference"
            continue
        m = _TABLE.match(stripped)
        if m:
            header = clean_line(lines[i])[1] if i < len(lines) else ""
            i += 1
            rows = []
            while i < len(lines):
                raw = clean_line(lines[i])[1]
                if not raw.startswith("\t") or not raw.strip():
                    break
                rows.append(raw)
                i += 1
            if profile_context == "inference":
                tables[m.group("title").strip()] = _table(header, rows)
            continue
        m = re.match(r"^Number of nodes executed: (\d+)", stripped)
        if m:
            if profile_context == "inference":
                nodes_executed = int(m.group(1))
            continue
        m = _RUN_BLOCK.match(stripped)
        if m:
            pending = (int(m.group("runs")), float(m.group("secs")))
            continue
        if _STAT.match(stripped) and pending is not None:
            log.runs.append((pending[0], pending[1], parse_stat(stripped)))
            pending = None
            continue
        if "timings in us:" in stripped:
            log.timings_us.update(_timings(stripped))
            continue
        m = re.match(rf"^The input model file size \(MB\): ({_NUMBER})", stripped)
        if m:
            log.model_size_mb = float(m.group(1))
            continue
        m = re.match(rf"^Initialized session in ({_NUMBER}) ?ms", stripped)
        if m:
            log.init_ms = float(m.group(1))
            continue
        m = re.match(
            rf"^(?:Memory footprint delta from the start of the tool|Peak memory footprint)"
            rf" \(MB\): init=({_NUMBER}) overall=({_NUMBER})",
            stripped,
        )
        if m:
            log.memory_mb["init"] = float(m.group(1))
            log.memory_mb["overall"] = float(m.group(2))
            continue
        m = re.match(rf"^Overall peak memory footprint \(MB\)[^:]*: ({_NUMBER})", stripped)
        if m:
            log.memory_mb["peak"] = float(m.group(1))
            continue
        m = re.match(rf"^- VmRSS\s*: ({_NUMBER}) MB", stripped)
        if m:
            log.memory_mb["vmrss_at_end"] = float(m.group(1))
            continue
        if stripped.startswith("Unconsumed cmdline flags:"):
            log.unconsumed_flags += stripped.split(":", 1)[1].split()
            continue
        if re.match(r"^Created TensorFlow Lite XNNPACK delegate", stripped):
            log.xnnpack_created = True
            continue
        found = _delegate(stripped)
        if found:
            log.delegates.append(found)
            continue
        m = _PARAM.match(stripped)
        if m and not log.runs:
            log.params[m.group("key").strip()] = m.group("value")
    if log.init_ms is None and "init" in log.timings_us:
        log.init_ms = log.timings_us["init"] / 1000.0
    if tables or nodes_executed is not None:
        log.op_profile = {
            "nodes_executed": nodes_executed,
            "run_order": tables.get("Run Order", []),
            "top_by_time": tables.get("Top by Computation Time", []),
            "by_node_type": tables.get("Summary by node type", []),
        }
    return log
