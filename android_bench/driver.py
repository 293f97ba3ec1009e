"""Measure a model on an Android device with TFLite/LiteRT's native `benchmark_model`.

The user supplies the binary (`--benchmark-binary`, `$EDGEQ_BENCHMARK_MODEL` or
`benchmark_binary` in the target's config; see README.md for where the official builds
come from). It goes to the device's content-addressed cache once (a second run sends
nothing), is made executable, and runs with the options edgeq exposes:

    [taskset MASK] benchmark_model --graph=MODEL --num_threads=N --warmup_runs=N
        --warmup_min_secs=S --num_runs=N --min_secs=S --max_secs=S [--use_xnnpack=B]
        [--use_gpu=true] [--use_nnapi=true] [--enable_op_profiling=true]

Its log becomes an `edgeq.run/1` document with `runner.name = "benchmark_model"`:
init, first inference, warm-up, steady-state count/min/max/mean/std, memory footprint,
the delegates it applied and the op profile when asked. Percentiles it does not print
are absent, never estimated. Accuracy comes from `accuracy.py` (device python runner or
host) and says where it was measured.
"""

from __future__ import annotations

import os
import re
import shlex
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeq.config import TargetConfig
from edgeq.errors import RunnerError, UsageError, tail
from edgeq.fsutil import sha256_file
from edgeq.results import RUN_SCHEMA, validate_run
from edgeq.targets import Target, quote_argv

from . import accuracy as accuracy_mod
from .parser import BenchmarkLog, parse_output

Progress = Callable[[str], None]

BINARY_ENV = "EDGEQ_BENCHMARK_MODEL"
RUNNER_NAME = "benchmark_model"
#: The official nightly builds (https://ai.google.dev/edge/litert/models/measurement).
NIGHTLY_URL = (
    "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/"
    "lite/tools/nightly/latest/{flavour}_benchmark_model"
)
LOG_KEEP_CHARS = 200_000


def _say(progress: Progress | None, msg: str) -> None:
    if progress:
        progress(msg)


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class BenchmarkOptions:
    """The `benchmark_model` flags edgeq sets (names as the tool spells them)."""

    num_threads: int = 1
    warmup_runs: int = 10
    warmup_min_secs: float = 0.5
    num_runs: int = 100
    min_secs: float = 1.0
    max_secs: float = 60.0
    use_xnnpack: bool | None = None
    use_gpu: bool = False
    use_nnapi: bool = False
    enable_op_profiling: bool = False
    taskset: str = ""

    @classmethod
    def from_settings(cls, settings: Any, config: TargetConfig | None = None) -> BenchmarkOptions:
        """From deploy's RunSettings (+ its `benchmark_options`) and the target's `taskset`."""
        extra = dict(getattr(settings, "benchmark_options", None) or {})
        taskset = extra.pop("taskset", None) or (config.get("taskset") if config else "") or ""
        unknown = sorted(set(extra) - {"use_xnnpack", "use_gpu", "use_nnapi", "op_profiling"})
        if unknown:
            raise UsageError(f"unknown benchmark_model option(s): {', '.join(unknown)}")
        return cls(
            num_threads=settings.threads,
            warmup_runs=settings.warmup_runs,
            warmup_min_secs=settings.warmup_min_s,
            num_runs=settings.runs,
            min_secs=settings.min_s,
            max_secs=settings.max_s,
            use_xnnpack=extra.get("use_xnnpack"),
            use_gpu=bool(extra.get("use_gpu")),
            use_nnapi=bool(extra.get("use_nnapi")),
            enable_op_profiling=bool(extra.get("op_profiling")),
            taskset=str(taskset),
        ).validate()

    def validate(self) -> BenchmarkOptions:
        if self.taskset and not re.fullmatch(r"(0[xX])?[0-9a-fA-F]+", self.taskset):
            raise UsageError(
                f"taskset mask {self.taskset!r} is not a hexadecimal CPU mask (e.g. f0 for "
                f"cores 4-7, the big cores of many phones)"
            )
        if self.taskset and int(self.taskset, 16) == 0:
            raise UsageError("taskset mask 0 selects no CPU; use e.g. f0")
        return self

    def argv(self, binary: str, model: str) -> list[str]:
        """The device command as an argv list (quote it with `quote_argv`)."""
        argv = ["taskset", self.taskset] if self.taskset else []
        argv += [
            binary,
            f"--graph={model}",
            f"--num_threads={self.num_threads}",
            f"--warmup_runs={self.warmup_runs}",
            f"--warmup_min_secs={self.warmup_min_secs:g}",
            f"--num_runs={self.num_runs}",
            f"--min_secs={self.min_secs:g}",
            f"--max_secs={self.max_secs:g}",
        ]
        if self.use_xnnpack is not None:
            argv.append(f"--use_xnnpack={str(self.use_xnnpack).lower()}")
        if self.use_gpu:
            argv.append("--use_gpu=true")
        if self.use_nnapi:
            argv.append("--use_nnapi=true")
        if self.enable_op_profiling:
            argv.append("--enable_op_profiling=true")
        return argv

    def delegates_requested(self) -> list[str]:
        names = []
        if self.use_xnnpack:
            names.append("XNNPACK")
        if self.use_gpu:
            names.append("GPU")
        if self.use_nnapi:
            names.append("NNAPI")
        return names


# --------------------------------------------------------------------------- the binary


def resolve_binary(explicit: str | Path | None, config: TargetConfig) -> Path | None:
    """The host's benchmark_model: --benchmark-binary, else $EDGEQ_BENCHMARK_MODEL, else the
    target's `benchmark_binary`; None when none is given (deploy then uses the Python runner).
    """
    for value, where in (
        (explicit, "--benchmark-binary"),
        (os.environ.get(BINARY_ENV), f"${BINARY_ENV}"),
        (config.get("benchmark_binary"), f"benchmark_binary in [targets.{config.name}]"),
    ):
        if value:
            path = Path(str(value)).expanduser()
            if not path.is_file():
                raise UsageError(
                    f"benchmark_model binary not found: {path} (from {where}); download "
                    f"the Android build, e.g. {NIGHTLY_URL.format(flavour='android_aarch64')}"
                )
            return path
    return None


_ELF_MACHINES = {3: "x86", 40: "arm", 62: "x86_64", 183: "aarch64"}
_ABI_MACHINE = {
    "arm64-v8a": "aarch64",
    "armeabi-v7a": "arm",
    "armeabi": "arm",
    "x86_64": "x86_64",
    "x86": "x86",
}


def elf_info(path: Path) -> dict[str, Any] | None:
    """Machine and program interpreter of an ELF file; None for anything else (a script)."""
    with open(path, "rb") as fh:
        head = fh.read(64)
        if len(head) < 52 or head[:4] != b"\x7fELF":
            return None
        is64, little = head[4] == 2, head[5] == 1
        end = "<" if little else ">"
        machine = struct.unpack_from(end + "H", head, 18)[0]
        if is64:
            phoff = struct.unpack_from(end + "Q", head, 32)[0]
            phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
        else:
            phoff = struct.unpack_from(end + "I", head, 28)[0]
            phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
        interp = None
        for i in range(min(phnum, 64)):
            fh.seek(phoff + i * phentsize)
            ph = fh.read(phentsize)
            if len(ph) < (56 if is64 else 32):
                break
            if struct.unpack_from(end + "I", ph, 0)[0] != 3:  # PT_INTERP
                continue
            if is64:
                offset, size = (
                    struct.unpack_from(end + "Q", ph, 8)[0],
                    struct.unpack_from(end + "Q", ph, 32)[0],
                )
            else:
                offset, size = (
                    struct.unpack_from(end + "I", ph, 4)[0],
                    struct.unpack_from(end + "I", ph, 16)[0],
                )
            fh.seek(offset)
            interp = fh.read(min(size, 4096)).rstrip(b"\0").decode(errors="replace")
            break
    return {"machine": _ELF_MACHINES.get(machine, f"e_machine {machine}"), "interpreter": interp}


def check_binary(binary: Path, environment: dict[str, Any], target_name: str) -> None:
    """Refuse a binary this device cannot run (wrong ABI, or a Linux/glibc build)."""
    info = elf_info(binary)
    if info is None:
        return
    interp = info["interpreter"]
    if interp and not interp.startswith("/system/bin/linker"):
        raise UsageError(
            f"{binary} is not an Android build (its loader is {interp}); download "
            f"{NIGHTLY_URL.format(flavour='android_aarch64')} (or android_arm for 32-bit)"
        )
    abis = [a for a in environment.get("cpu_abilist") or [] if a] or [
        a for a in [environment.get("cpu_abi")] if a
    ]
    machines = {_ABI_MACHINE.get(a) for a in abis}
    if abis and info["machine"] not in machines:
        flavour = "android_aarch64" if "aarch64" in machines else "android_arm"
        raise UsageError(
            f"{binary} is built for {info['machine']} but {target_name} runs "
            f"{', '.join(abis)}; use {NIGHTLY_URL.format(flavour=flavour)}"
        )


# --------------------------------------------------------------------------- the device

_ENV_FIELDS = (
    ("machine", "uname -m"),
    ("kernel", "uname -r"),
    ("abi", "getprop ro.product.cpu.abi"),
    ("abilist", "getprop ro.product.cpu.abilist"),
    ("release", "getprop ro.build.version.release"),
    ("sdk", "getprop ro.build.version.sdk"),
    ("model", "getprop ro.product.model"),
    ("manufacturer", "getprop ro.product.manufacturer"),
    ("hardware", "getprop ro.hardware"),
    ("soc", "getprop ro.soc.model"),
    ("qemu", "getprop ro.kernel.qemu"),
    ("boot_qemu", "getprop ro.boot.qemu"),
    ("cores", "grep -c ^processor /proc/cpuinfo"),
    ("governor", "cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
    ("temp", "cat /sys/class/thermal/thermal_zone0/temp"),
    ("emulated_env", 'echo "${EDGEQ_EMULATED-}"'),
)


def device_facts(target: Target) -> dict[str, str]:
    """Raw facts from the device (getprop, uname, /proc, /sys) in one command."""
    script = "; ".join(f'echo "{key}=$({cmd} 2>/dev/null)"' for key, cmd in _ENV_FIELDS)
    res = target.run(script, timeout=60, check=False)
    facts = {}
    for line in res.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in dict(_ENV_FIELDS):
            facts[key] = value.strip()
    return facts


def detect_emulation(facts: dict[str, str]) -> tuple[bool, str | None]:
    """Is the device an emulator or an ARM ABI translated on x86? (flag, evidence)."""
    forced = facts.get("emulated_env")
    if forced:
        return forced.lower() in ("1", "true", "yes"), f"EDGEQ_EMULATED={forced}"
    if facts.get("qemu") == "1" or facts.get("boot_qemu") == "1":
        return True, "ro.kernel.qemu/ro.boot.qemu = 1 (Android emulator)"
    if facts.get("hardware") in ("goldfish", "ranchu", "cutf_cvm"):
        return True, f"ro.hardware = {facts['hardware']} (Android emulator)"
    machine, abi = facts.get("machine", ""), facts.get("abi", "")
    if abi.startswith("arm") and machine in ("x86_64", "i686", "x86"):
        return True, f"the kernel is {machine} but the ABI is {abi} (binary translation)"
    return False, None


def environment(facts: dict[str, str], opts: BenchmarkOptions, log: BenchmarkLog | None) -> dict:
    """The run document's `environment` for a benchmark_model run."""
    emulated, evidence = detect_emulation(facts)
    release, sdk = facts.get("release"), facts.get("sdk")
    temp = facts.get("temp", "")
    cores = facts.get("cores", "")
    model = " ".join(x for x in (facts.get("manufacturer"), facts.get("model")) if x)
    return {
        "machine": facts.get("machine") or "unknown",
        "cpu_model": facts.get("soc") or facts.get("hardware") or None,
        "cpu_abi": facts.get("abi") or None,
        "cpu_abilist": [a for a in (facts.get("abilist") or "").split(",") if a],
        "cores": int(cores) if cores.isdigit() else None,
        "kernel": facts.get("kernel") or None,
        "os": f"Android {release} (API {sdk})" if release else "Android",
        "device_model": model or None,
        "cpu_governor": facts.get("governor") or None,
        "temperature_c": int(temp) / 1000 if temp.lstrip("-").isdigit() else None,
        "python": None,
        "runtime": RUNNER_NAME,
        "runtime_version": None,
        "threads": opts.num_threads,
        "taskset": opts.taskset or None,
        "delegates_requested": opts.delegates_requested(),
        "delegates_applied": log.delegates if log else [],
        "emulated": emulated,
        "emulation_evidence": evidence,
    }


# --------------------------------------------------------------------------- the run


def _failure(target: Target, res: Any, log_text: str, opts: BenchmarkOptions, facts) -> str:
    text = log_text.strip()
    low = text.lower()
    errors = [ln for ln in text.splitlines() if "error" in ln.lower()]
    detail = tail("\n".join(errors) if errors else text, 3) or "no output"
    hint = ""
    if res.exit_code == 126 or "exec format error" in low or "not executable" in low:
        hint = (
            f"; the binary cannot run on this device (ABI {facts.get('abi') or '?'}): use the "
            f"android_aarch64 build for arm64-v8a, android_arm for armeabi-v7a"
        )
    elif opts.taskset and ("taskset" in low or "sched_setaffinity" in low):
        hint = (
            f"; the taskset mask {opts.taskset!r} does not fit this device "
            f"({facts.get('cores') or '?'} cores): fix --taskset / taskset in "
            f"[targets.{target.name}]"
        )
    elif res.exit_code == 127:
        hint = "; the binary or its loader was not found (is it an Android build?)"
    return f"{target.name}: benchmark_model failed (exit {res.exit_code}): {detail}{hint}"


def to_run_document(
    log: BenchmarkLog,
    *,
    model: dict[str, Any],
    env: dict[str, Any],
    opts: BenchmarkOptions,
    accuracy: dict[str, Any] | None,
    binary: dict[str, Any],
    log_text: str,
    started_utc: str,
    origin: str = "device",
) -> dict[str, Any]:
    """An `edgeq.run/1` document from a parsed log: only the figures the tool printed."""
    steady = log.inference
    if steady is None:
        raise RunnerError(
            f"{origin}: benchmark_model's log has no statistics for the timed runs "
            f"(`count=...` after the second `Running benchmark ...`); it ends with: "
            f"{tail(log_text, 3) or 'nothing'}"
        )
    warm = log.warmup
    first_us = log.first_inference_us
    return {
        "schema": RUN_SCHEMA,
        "ok": True,
        "error": None,
        "runner": {"name": RUNNER_NAME, "version": None, **binary},
        "started_utc": started_utc,
        "model": model,
        "phases_ms": {
            "init": log.init_ms,
            "first_inference": first_us / 1000 if first_us is not None else None,
            "warmup": warm.count * warm.avg / 1000 if warm and warm.avg is not None else None,
            "steady_state": steady.count * steady.avg / 1000 if steady.avg is not None else None,
        },
        "warmup": {
            "count": warm.count if warm else 0,
            "ms": warm.count * warm.avg / 1000 if warm and warm.avg is not None else None,
        },
        "latency_ms": {"invoke": steady.to_ms(), "end_to_end": None},
        "accuracy": accuracy,
        "accuracy_source": accuracy.get("source") if accuracy else None,
        "memory": {
            "footprint_mb": dict(log.memory_mb) or None,
            "note": "benchmark_model's own figures: deltas from the tool's start, approximate",
        },
        "environment": env,
        "settings": {
            "threads": opts.num_threads,
            "warmup_runs": opts.warmup_runs,
            "warmup_min_s": opts.warmup_min_secs,
            "runs": opts.num_runs,
            "min_s": opts.min_secs,
            "max_s": opts.max_secs,
            "use_xnnpack": opts.use_xnnpack,
            "use_gpu": opts.use_gpu,
            "use_nnapi": opts.use_nnapi,
            "enable_op_profiling": opts.enable_op_profiling,
            "taskset": opts.taskset or None,
        },
        "delegates": log.delegates,
        "op_profile": log.op_profile,
        "benchmark_model": {
            "params": log.params,
            "model_size_mb": log.model_size_mb,
            "timings_us": log.timings_us,
            "warnings": log.warnings,
            "errors": log.errors,
            "log": log_text[-LOG_KEEP_CHARS:],
        },
    }


def _model_on_device(
    target: Target, artifact: Path, remote: str, log: BenchmarkLog
) -> dict[str, Any]:
    """What the tool ran: sha256 computed on the device, or (phones whose toybox has no
    sha256sum, Android 7 and older) the size checked there and the host's sha256, flagged."""
    size = artifact.stat().st_size
    doc = {"path": remote, "bytes": size, "reported_size_mb": log.model_size_mb}
    device_sha = target.remote_sha256(remote)
    if device_sha is not None:
        return {**doc, "sha256": device_sha, "sha256_checked_on_device": True}
    res = target.run(["wc", "-c", remote], timeout=60, check=False)
    words = res.stdout.split()
    if not (res.ok and words and words[0].isdigit() and int(words[0]) == size):
        raise RunnerError(
            f"{target.name}: the model on the device ({remote}) is not the one sent "
            f"(size {words[0] if words else '?'} vs {size} bytes); clear {target.cache_dir}"
        )
    return {**doc, "sha256": sha256_file(artifact), "sha256_checked_on_device": False}


def measure(
    target: Target,
    artifact: Path,
    eval_npz: Path | None,
    settings: Any,
    binary: Path,
    progress: Progress | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run `benchmark_model` on the device and measure accuracy; same contract as
    `edgeq.deploy.measure`: (validated run document, transfer/timing facts)."""
    opts = BenchmarkOptions.from_settings(settings, target.config)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    with target:
        _say(progress, f"connected to {target.name} ({target.describe()})")
        facts = device_facts(target)
        check_binary(binary, environment(facts, opts, None), target.name)
        remote_bin = target.ensure_file(binary, "-benchmark_model")
        q = shlex.quote(remote_bin)
        target.run(f"[ -x {q} ] || chmod 755 {q}", timeout=30)
        remote_model = target.ensure_file(artifact, ".tflite")
        _say(progress, f"sent {target.bytes_sent:,} bytes")
        workdir = target.workdir
        argv = opts.argv(remote_bin, remote_model)
        _say(progress, f"running benchmark_model on {target.name}")
        t_run = time.perf_counter()
        res = target.run(
            quote_argv(argv) + " 2>&1", timeout=settings.timeout, check=False, killable=True
        )
        run_s = time.perf_counter() - t_run
        log_text = res.stdout + (("\n" + res.stderr) if res.stderr.strip() else "")
        if res.exit_code != 0:
            raise RunnerError(
                _failure(target, res, log_text, opts, facts),
                details={"exit_status": res.exit_code, "stderr_tail": tail(log_text)},
            )
        log = parse_output(log_text)
        model_doc = _model_on_device(target, artifact, remote_model, log)
        accuracy = None
        if eval_npz is not None:
            accuracy = accuracy_mod.measure_accuracy(
                target, artifact, remote_model, eval_npz, settings, progress
            )
        if target.keep:
            _say(progress, f"kept the workdir {workdir} on {target.name}")
    doc = to_run_document(
        log,
        model=model_doc,
        env=environment(facts, opts, log),
        opts=opts,
        accuracy=accuracy,
        binary={
            "binary": binary.name,
            "binary_sha256": sha256_file(binary),
            "argv": argv,
        },
        log_text=log_text,
        started_utc=started,
        origin=target.name,
    )
    validate_run(doc, target.name)
    facts_out = {
        "bytes_sent": target.bytes_sent,
        "files": target.files_sent,
        "runner_process_s": run_s,
        "total_s": time.perf_counter() - t0,
        "workdir": workdir,
        "kept": target.keep,
        "options": asdict(opts),
    }
    return doc, facts_out
