"""edgeq's Android path: the native `benchmark_model` on a phone over adb.

Installed as `edgeq_android`. `driver.measure` is what `edgeq deploy --target android`
runs when the adb target has a benchmark binary; `parser.parse_output` reads the tool's
log; `accuracy` decides whether accuracy is measured on the device or on the host.
See README.md in this folder for setup, where the binary comes from, and limits.
"""

from __future__ import annotations

from .driver import BenchmarkOptions, measure, resolve_binary
from .parser import BenchmarkLog, parse_output

__all__ = ["BenchmarkLog", "BenchmarkOptions", "measure", "parse_output", "resolve_binary"]
