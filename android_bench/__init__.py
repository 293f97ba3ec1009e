"""edgeq's Android notes and the reader of TFLite's native `benchmark_model` log.

Installed as `edgeq_android`. `parser.parse_output` turns the tool's log into a
`BenchmarkLog`; it depends on nothing but the standard library. The runner that drives the
binary on a device is `edgeq.runners.benchmark_model` (the core imports this package, never
the other way round). See README.md in this folder for setup, where the binary comes from,
and limits.
"""

from __future__ import annotations

from .parser import BenchmarkLog, Stat, parse_output, parse_stat

__all__ = ["BenchmarkLog", "Stat", "parse_output", "parse_stat"]
