"""The `benchmark_model` runner: TFLite/LiteRT's native benchmark binary on the device.

The user supplies the binary (`--benchmark-binary`, the target's `benchmark_binary`, or
`$EDGEQ_BENCHMARK_MODEL` for Android targets; see android_bench/README.md for where the
official builds come from). It goes to the device's content-addressed cache once, is made
executable, and runs with the run settings as the tool spells them:

    [taskset MASK] benchmark_model --graph=MODEL --num_threads=N --num_runs=N
        --min_secs=S --warmup_runs=N --warmup_min_secs=S --max_secs=S [--use_xnnpack=B]
        [--use_gpu=true] [--use_nnapi=true] [--enable_op_profiling=true]

Its log (parsed by `edgeq_android.parser`) becomes an `edgeq.run/1` document with
`runner.name = "benchmark_model"`: init, first inference, warm-up, steady-state
count/min/max/mean/std and p5/p50/p95 (LiteRT's builds print `p5= median= p95=`), memory
footprint (with its definition), delegates, XNNPACK on/off, op profile. Percentiles it does
not print (p90, p99) are absent, never estimated: a budget on them is judged at the nearest
higher one it prints (`edgeq.budget.substitute`). The binary has no `--version`: it is
named by its sha256 and the target's `benchmark_build`.

The binary feeds random inputs: it measures speed, not accuracy. The same artifact (same
sha256) is evaluated either on the device by edgeq's Python runner, when the target's
`python` has numpy and an interpreter (`accuracy_source: device`), or on this host
(`accuracy_source: host`, with the reason; `edgeq.hostjudge` evaluates it after measuring,
this runner only says why) — as `use_python_runner` (true / false / auto) says. The
device needs no Python at all for this runner.
"""

from __future__ import annotations

import os
import re
import shlex
import struct
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from edgeq_android.parser import BenchmarkLog, parse_output

from .. import compat, paths
from .. import settings as settings_mod
from ..errors import CommandError, DeviceError, RunnerError, UsageError, tail
from ..fields import Field, TargetConfig, f
from ..fsutil import sha256_file
from ..progress import Progress, say
from ..results import RUN_SCHEMA, parse_run, validate_run
from ..settings import RunSettings, Spec
from ..targets import Target, quote_argv, transport_class
from . import register
from .base import Health, Job, Measurement, Runner
from .deviceenv import environment_checks, probe, seen

BINARY_ENV = "EDGEQ_BENCHMARK_MODEL"
_TASKSET = re.compile(r"(0[xX])?[0-9a-fA-F]+")


def _check_taskset(mask: str) -> None:
    if not mask:
        return
    if not _TASKSET.fullmatch(mask):
        raise UsageError(
            f"taskset mask {mask!r} is not a hexadecimal CPU mask (e.g. f0 for "
            f"cores 4-7, the big cores of many phones)"
        )
    if int(mask, 16) == 0:
        raise UsageError("taskset mask 0 selects no CPU; use e.g. f0")


#: This runner's own run settings (`deploy`/`bench` options and lab [run] keys).
OPTIONS: tuple[Spec, ...] = (
    Spec("use_xnnpack", bool, None, "benchmark_model: XNNPACK on/off (default: its own).",
         "--use-xnnpack/--no-xnnpack", optional=True),
    Spec("use_gpu", bool, False, "benchmark_model: the GPU delegate.", "--use-gpu"),
    Spec("use_nnapi", bool, False, "benchmark_model: the NNAPI delegate.", "--use-nnapi"),
    Spec("op_profiling", bool, False, "benchmark_model: per-operator profile (each node's "
         "time; lab [run] key op_profiling or op_profile).", "--op-profiling",
         aliases=("op_profile",)),
    Spec("taskset", str, "", "benchmark_model: CPU mask to pin it to, e.g. f0 (big cores).",
         "--taskset", check=_check_taskset),
    Spec("benchmark_binary", str, "", "Run this native benchmark_model (else "
         "$EDGEQ_BENCHMARK_MODEL for adb targets, or benchmark_binary of the target).",
         "--benchmark-binary", lab=False),
)  # fmt: skip

#: benchmark_model's flag (without --) for each setting it takes, in its argv order.
NATIVE_FLAGS = {
    "threads": "num_threads",
    "runs": "num_runs",
    "min_s": "min_secs",
    "warmup_runs": "warmup_runs",
    "warmup_min_s": "warmup_min_secs",
    "max_s": "max_secs",
    "use_xnnpack": "use_xnnpack",
    "use_gpu": "use_gpu",
    "use_nnapi": "use_nnapi",
    "op_profiling": "enable_op_profiling",
}

RUNNER_NAME = "benchmark_model"
#: The official nightly builds (https://ai.google.dev/edge/litert/models/measurement).
NIGHTLY_URL = (
    "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/"
    "lite/tools/nightly/latest/{flavour}_benchmark_model"
)
LOG_KEEP_CHARS = 200_000
#: What each of the tool's memory figures is (benchmark_tflite_model.cc): not the Python
#: runner's resident-set figures, which count from a different start.
MEMORY_DEFINITIONS = {
    "init": "MB: growth of the tool process's peak resident set (getrusage max RSS on "
    "Linux) from the tool's start to the end of model loading and initialisation",
    "overall": "MB: growth of the tool process's peak resident set from the tool's start "
    "to the end of all its runs (initialisation, warm-up and timed runs)",
    "peak": "MB: the highest footprint the tool's periodic monitor saw "
    "(--report_peak_memory_footprint)",
    "vmrss_at_end": "MB: the process's VmRSS when the tool ended",
}


# --------------------------------------------------------------------------- the binary


def require_binary(settings: RunSettings | None, config: TargetConfig, why: str) -> Path:
    """`resolve_binary`, or a UsageError (exit 2, before anything is sent): `why` says what
    needs the binary, and the message says where to configure one."""
    found = resolve_binary(settings, config)
    if found is None:
        raise UsageError(
            f"{config.name}: {why}; set benchmark_binary in {config.where} or pass "
            f"--benchmark-binary"
        )
    return found


def resolve_binary(settings: RunSettings | None, config: TargetConfig) -> Path | None:
    """The host's benchmark_model: --benchmark-binary, else (Android targets)
    $EDGEQ_BENCHMARK_MODEL, else the target's `benchmark_binary`; None when none."""

    env_applies = transport_class(config.transport).platform == "android"
    for value, where in (
        (settings.benchmark_binary if settings else "", "--benchmark-binary"),
        (os.environ.get(BINARY_ENV) if env_applies else "", f"${BINARY_ENV}"),
        (config.get("benchmark_binary"), f"benchmark_binary in {config.where}"),
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
                offset = struct.unpack_from(end + "Q", ph, 8)[0]
                size = struct.unpack_from(end + "Q", ph, 32)[0]
            else:
                offset = struct.unpack_from(end + "I", ph, 4)[0]
                size = struct.unpack_from(end + "I", ph, 16)[0]
            fh.seek(offset)
            interp = fh.read(min(size, 4096)).rstrip(b"\0").decode(errors="replace")
            break
    return {"machine": _ELF_MACHINES.get(machine, f"e_machine {machine}"), "interpreter": interp}


def check_binary(binary: Path, environment: dict[str, Any], target_name: str) -> None:
    """Refuse a binary this device cannot run (wrong ABI; Linux build on Android or the
    reverse). Scripts and static binaries pass the loader check."""
    info = elf_info(binary)
    if info is None:
        return
    interp = info["interpreter"]
    android = str(environment.get("os") or "").startswith("Android")
    if android and interp and not interp.startswith("/system/bin/linker"):
        raise UsageError(
            f"{binary} is not an Android build (its loader is {interp}); download "
            f"{NIGHTLY_URL.format(flavour='android_aarch64')} (or android_arm for 32-bit)"
        )
    if not android and interp and interp.startswith("/system/bin/linker"):
        raise UsageError(
            f"{binary} is an Android build (loader {interp}) but {target_name} runs "
            f"{environment.get('os') or 'Linux'}; use a Linux build of benchmark_model"
        )
    abis = [a for a in environment.get("cpu_abilist") or [] if a] or [
        a for a in [environment.get("cpu_abi")] if a
    ]
    machines = {_ABI_MACHINE.get(a) for a in abis} or {environment.get("machine")}
    if machines - {None} and info["machine"] not in machines:
        flavour = "android_aarch64" if "aarch64" in machines else "android_arm"
        raise UsageError(
            f"{binary} is built for {info['machine']} but {target_name} runs "
            f"{', '.join(abis) or environment.get('machine')}; use "
            f"{NIGHTLY_URL.format(flavour=flavour) if android else 'a build for that CPU'}"
        )


def identify(binary: Path, config: TargetConfig) -> dict[str, Any]:
    """What the binary is. LiteRT's benchmark_model has no `--version`, so it is named by
    its sha256 and, when the user states it, the target's `benchmark_build` (e.g. the
    source commit and build flags of a PROVENANCE file)."""
    sha = sha256_file(binary)
    build = str(config.get("benchmark_build") or "") or None
    return {
        "binary": binary.name,
        "binary_sha256": sha,
        "build": build,
        "version": f"{build} (sha256 {sha[:12]})" if build else f"sha256 {sha[:12]}",
    }


# --------------------------------------------------------------------------- the device

#: /proc/cpuinfo keys naming the CPU, in the Python runner's order of preference.
CPUINFO_KEYS = ("model name", "Model", "Hardware", "Processor", "cpu model")

_ENV_FIELDS = (
    ("machine", "uname -m"),
    ("kernel", "uname -r"),
    ("system", "uname -s"),
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
    ("pretty", "sed -n 's/^PRETTY_NAME=//p' /etc/os-release"),
    ("dt_model", "cat /proc/device-tree/model"),
    ("cores", "grep -c ^processor /proc/cpuinfo"),
    *(
        (f"cpuinfo_{i}", f"grep -m1 '^{key}[[:space:]]*:' /proc/cpuinfo | cut -d: -f2-")
        for i, key in enumerate(CPUINFO_KEYS)
    ),
    ("governor", "cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
    ("temp", "cat /sys/class/thermal/thermal_zone0/temp"),
    ("emulated_env", 'echo "${EDGEQ_EMULATED-}"'),
    ("cpuinfo_qemu", "grep -c QEMU /proc/cpuinfo"),
    ("cpuinfo_x86", "grep -c -E 'GenuineIntel|AuthenticAMD' /proc/cpuinfo"),
)


def device_facts(target: Target) -> dict[str, str]:
    """Raw facts from the device (getprop, uname, /proc, /sys) in one shell command; needs
    nothing but a POSIX shell on the device."""
    script = "; ".join(f'echo "{key}=$({cmd} 2>/dev/null)"' for key, cmd in _ENV_FIELDS)
    res = target.run(script, timeout=60, check=False)
    facts = {}
    for line in res.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in dict(_ENV_FIELDS):
            facts[key] = value.strip().strip('"').rstrip("\x00")
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
    # the Python runner's rule (edgeq_runner.detect_emulation): QEMU user mode
    if machine.startswith(("aarch64", "arm")):
        if facts.get("cpuinfo_x86", "0").strip() not in ("", "0"):
            return True, f"machine is {machine} but /proc/cpuinfo describes an x86 CPU"
        if facts.get("cpuinfo_qemu", "0").strip() not in ("", "0"):
            return True, "/proc/cpuinfo names QEMU"
    return False, None


def cpu_model(facts: dict[str, str]) -> str | None:
    """The CPU as /proc/cpuinfo names it (the Python runner's rule), else the SoC property,
    else the device-tree model."""
    for i in range(len(CPUINFO_KEYS)):
        if facts.get(f"cpuinfo_{i}"):
            return facts[f"cpuinfo_{i}"]
    return facts.get("soc") or facts.get("hardware") or facts.get("dt_model") or None


def environment(
    facts: dict[str, str],
    settings: RunSettings,
    log: BenchmarkLog | None,
    build: dict[str, Any] | None = None,
) -> dict:
    """The run document's `environment` for a benchmark_model run (`build`: what
    `identify()` says of the binary)."""
    emulated, evidence = detect_emulation(facts)
    release, sdk = facts.get("release"), facts.get("sdk")
    temp = facts.get("temp", "")
    cores = facts.get("cores", "")
    model = " ".join(x for x in (facts.get("manufacturer"), facts.get("model")) if x)
    if release:
        os_name = f"Android {release} (API {sdk})"
    else:
        os_name = facts.get("pretty") or facts.get("system") or "unknown"
    return {
        "machine": facts.get("machine") or "unknown",
        "cpu_model": cpu_model(facts),
        "cpu_abi": facts.get("abi") or None,
        "cpu_abilist": [a for a in (facts.get("abilist") or "").split(",") if a],
        "cores": int(cores) if cores.isdigit() else None,
        "kernel": facts.get("kernel") or None,
        "os": os_name,
        "device_model": model or facts.get("dt_model") or None,
        "cpu_governor": facts.get("governor") or None,
        "temperature_c": int(temp) / 1000 if temp.lstrip("-").isdigit() else None,
        "python": None,
        "runtime": RUNNER_NAME,
        "runtime_version": (build or {}).get("version"),
        "xnnpack": log.xnnpack if log else None,
        "threads": settings.threads,
        "taskset": settings.taskset or None,
        "delegates_requested": delegates_requested(settings),
        "delegates_applied": log.delegates if log else [],
        "emulated": emulated,
        "emulation_evidence": evidence,
    }


# --------------------------------------------------------------------------- accuracy


def python_status(target: Target) -> tuple[bool, str]:
    """Can the target's python run edgeq's runner? (usable, why) — probes the device."""
    try:
        env = probe(target)
    except DeviceError as exc:
        return False, exc.message
    if not env.get("numpy"):
        return False, f"{target.python_argv()[0]} has no numpy"
    if not env.get("runtime"):
        return False, env.get("runtime_error") or "no TFLite interpreter importable"
    return True, f"{env['runtime']} {env.get('runtime_version') or ''}".strip()


def accuracy_on_device(target: Target, remote_model: str, job: Job) -> dict[str, Any]:
    """Top-1 measured on the device by edgeq's Python runner (one timed run only)."""
    remote_runner = target.ensure_file(paths.runner_path(), ".py")
    remote_data = target.ensure_file(job.eval_npz, ".npz")
    out_remote = f"{target.workdir}/accuracy.json"
    quick = job.settings.with_(runs=1, min_s=0.0, warmup_runs=0, warmup_min_s=0.0)
    argv = [
        *target.python_argv(),
        remote_runner,
        remote_model,
        "--data",
        remote_data,
        "--out",
        out_remote,
        *settings_mod.argv(quick),
    ]
    res = target.run(argv, timeout=job.settings.timeout, check=False, killable=True)
    with tempfile.TemporaryDirectory(prefix="edgeq-acc-") as tmp:
        local = Path(tmp) / "accuracy.json"
        try:
            target.get(out_remote, local)
            text = local.read_text(errors="replace")
        except (CommandError, OSError):
            text = res.stdout
    if res.exit_code != 0 and not text.strip():
        raise RunnerError.of(
            f"{target.name}: the Python runner failed while measuring accuracy on the device "
            f"(exit {res.exit_code}): {tail(res.stderr or res.stdout, 3) or 'no output'}",
            res,
        )
    doc = parse_run(text, target.name)
    acc = doc.get("accuracy")
    if not acc:
        raise RunnerError(f"{target.name}: the Python runner returned no accuracy")
    env = doc.get("environment") or {}
    acc["source"] = "device"
    acc["runtime"] = f"{env.get('runtime')} {env.get('runtime_version') or ''}".strip()
    acc["python"] = env.get("python")
    acc["model_sha256"] = doc["model"]["sha256"]
    acc["note"] = "measured on the device by the edgeq Python runner"
    return acc


def accuracy_python(target: Target) -> tuple[bool, str]:
    """Will the device's python measure accuracy (per `use_python_runner`)? (True, its
    runtime) or (False, why not); RunnerError when `use_python_runner = true` and that
    python cannot run the edgeq runner. Probes the device (cached for `seen`)."""
    choice = target.config.get("use_python_runner", "auto")
    if choice is False:
        return False, "use_python_runner = false"
    usable, why = python_status(target)
    if usable:
        return True, why
    if choice is True:
        raise RunnerError(
            f"{target.name}: use_python_runner = true but the device's python cannot run "
            f"the edgeq runner ({why}); install numpy and ai-edge-litert for it, or set "
            f'use_python_runner = "auto" to evaluate on the host'
        )
    return False, f"no usable python on the device ({why})"


def check_accuracy_python(target: Target, model: Path) -> None:
    """The operators `model` needs against the runtime of the device's python that will
    measure its accuracy (the binary's own check does not cover it): ModelError (exit 2)
    naming op, version and runtime, before the model is sent."""
    env = seen(target) or probe(target)
    remote_runner = target.ensure_file(paths.runner_path(), ".py")
    compat.check_on_python(
        target,
        remote_runner,
        env,
        model,
        role=" (the python that measures accuracy)",
        also=f"set use_python_runner = false in {target.config.where} to measure accuracy on "
        f"this host",
    )


def device_accuracy(
    target: Target,
    remote_model: str,
    job: Job,
    progress: Progress | None = None,
    plan: tuple[bool, str] | None = None,
) -> tuple[dict[str, Any] | None, str | None]:
    """Accuracy on the device per `use_python_runner`: (the accuracy, None), or (None, why
    it is to be evaluated on the host instead — `hostjudge.accuracy_on_host` does that).
    `plan`: what `accuracy_python` answered (asked here when None)."""
    on_device, why = plan or accuracy_python(target)
    if on_device:
        say(progress, f"measuring accuracy on {target.name} with its python ({why})")
        return accuracy_on_device(target, remote_model, job), None
    return None, why


# --------------------------------------------------------------------------- the run


def _failure(target: Target, res: Any, log_text: str, settings: RunSettings, facts) -> str:
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
    elif settings.taskset and ("taskset" in low or "sched_setaffinity" in low):
        hint = (
            f"; the taskset mask {settings.taskset!r} does not fit this device "
            f"({facts.get('cores') or '?'} cores): fix --taskset / taskset in "
            f"{target.config.where}"
        )
    elif res.exit_code == 127:
        hint = "; the binary or its loader was not found (is it a build for this device?)"
    return f"{target.name}: benchmark_model failed (exit {res.exit_code}): {detail}{hint}"


def native_flags(settings: RunSettings) -> list[str]:
    """The measuring flags as benchmark_model spells them (`--num_threads=1 …`): the shared
    settings it takes and its own options; unset values and switches that are off are left
    to the tool's default."""
    if isinstance(settings.threads, tuple):
        raise ValueError("argv of one run: measure each thread setting separately")
    out: list[str] = []
    for name, flag in NATIVE_FLAGS.items():
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, bool) and value is False and settings_mod.spec(name).default is False:
            continue
        out.append(f"--{flag}={settings_mod.text(value)}")
    return out


def delegates_requested(settings: RunSettings) -> list[str]:
    return [
        name
        for name, on in (
            ("XNNPACK", settings.use_xnnpack),
            ("GPU", settings.use_gpu),
            ("NNAPI", settings.use_nnapi),
        )
        if on
    ]


def argv(settings: RunSettings, binary: str, model: str) -> list[str]:
    """The device command as an argv list (quote it with `quote_argv`)."""
    prefix = ["taskset", settings.taskset] if settings.taskset else []
    return [*prefix, binary, f"--graph={model}", *native_flags(settings)]


#: The shell around benchmark_model: /proc/stat and the clock just before and just after the
#: tool, and the shell's `times` (the CPU its children used: the tool's own user + system
#: time, every thread), each block behind a marker carrying a per-run nonce ($1) so that
#: nothing the tool prints can pass for it. The tool's argv follows the nonce.
_SAMPLER = (
    'n="$1"; shift; '
    '_cpu() { echo "@edgeq-cpu-$n $1"; grep "^cpu[0-9]" /proc/stat 2>/dev/null; '
    'echo "uptime $(cut -d" " -f1 /proc/uptime 2>/dev/null)"; '
    'echo "loadavg $(cut -d" " -f1 /proc/loadavg 2>/dev/null)"; }; '
    '_cpu before; "$@" 2>&1; rc=$?; _cpu after; '
    'echo "hz $(getconf CLK_TCK 2>/dev/null)"; echo "@edgeq-cpu-$n times"; times; exit $rc'
)
_CLOCK = re.compile(r"(\d+)m([\d.]+)s")


def sampled_command(cmd: list[str], nonce: str) -> str:
    """`cmd` run by a shell that samples the CPU around it (see `_SAMPLER`)."""
    return quote_argv(["sh", "-c", _SAMPLER, "edgeq-native", nonce, *cmd])


def split_sampled(output: str, nonce: str) -> tuple[str, dict[str, Any] | None]:
    """The tool's own output, and the `contention` block the shell's samples give (None when
    the shell printed no usable sample: an old or odd shell, a /proc without CPU lines)."""
    marks = {f"@edgeq-cpu-{nonce} {k}": k for k in ("before", "after", "times")}
    lines = output.splitlines()
    at = {marks[line.strip()]: i for i, line in enumerate(lines) if line.strip() in marks}
    if "before" not in at or "after" not in at or at["before"] > at["after"]:
        return output, None
    start = at["before"] + 1
    while start < len(lines) and re.match(r"(cpu\d+|uptime|loadavg) ", lines[start]):
        start += 1
    tool = "\n".join(lines[start : at["after"]])
    end = at.get("times", len(lines))
    before = _cpu_sample(lines[at["before"] + 1 : start])
    after = _cpu_sample(lines[at["after"] + 1 : end])
    times = [_CLOCK.findall(line) for line in lines[end + 1 : end + 3]] if "times" in at else []
    children = None
    if len(times) == 2 and len(times[1]) == 2:
        children = sum(int(m) * 60 + float(sec) for m, sec in times[1])
    return tool, _native_contention(before, after, children)


def _cpu_sample(lines: list[str]) -> dict[str, Any]:
    cores: dict[str, dict[str, int]] = {}
    out: dict[str, Any] = {"cores": cores}
    for line in lines:
        parts = line.split()
        if len(parts) >= 9 and re.fullmatch(r"cpu\d+", parts[0]) and parts[1].isdigit():
            v = [int(x) for x in parts[1:9]]
            cores[parts[0]] = {"busy": v[0] + v[1] + v[2] + v[5] + v[6], "steal": v[7]}
        elif len(parts) == 2 and parts[0] in ("uptime", "loadavg", "hz"):
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


def _native_contention(
    before: dict[str, Any], after: dict[str, Any], own_cpu_s: float | None
) -> dict[str, Any] | None:
    """Who used the CPU while benchmark_model ran: the tool's own CPU time (the shell's
    `times` of its children) and everyone else's (/proc/stat busy ticks minus the tool's)."""
    hz = after.get("hz") or 100.0
    cores = sorted(set(before["cores"]) & set(after["cores"]))
    if not cores or "uptime" not in before or "uptime" not in after or own_cpu_s is None:
        return None
    wall = after["uptime"] - before["uptime"]
    if wall <= 0:
        return None
    busy = sum(after["cores"][c]["busy"] - before["cores"][c]["busy"] for c in cores) / hz
    steal = sum(after["cores"][c]["steal"] - before["cores"][c]["steal"] for c in cores) / hz
    return {
        "wall_s": round(wall, 4),
        "cores_available": len(cores),
        "self_cores": round(own_cpu_s / wall, 3),
        "others_cores": round(max(0.0, (busy - own_cpu_s) / wall), 3),
        "steal_cores": round(steal / wall, 3),
        "load1_before": before.get("loadavg"),
        "load1_after": after.get("loadavg"),
        "window": "run",
        "method": "/proc/stat just before and after benchmark_model, its own CPU time from "
        "the shell's `times` (whole run: start-up, warm-up and timed runs)",
    }


def to_run_document(
    log: BenchmarkLog,
    *,
    model: dict[str, Any],
    env: dict[str, Any],
    settings: RunSettings,
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
        "runner": {"name": RUNNER_NAME, **binary},
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
            "definitions": {
                key: MEMORY_DEFINITIONS[key] for key in log.memory_mb if key in MEMORY_DEFINITIONS
            },
            "note": "benchmark_model's own figures: deltas from the tool's start, approximate",
        },
        "environment": env,
        "settings": {
            "threads": settings.threads,
            "warmup_runs": settings.warmup_runs,
            "warmup_min_s": settings.warmup_min_s,
            "runs": settings.runs,
            "min_s": settings.min_s,
            "max_s": settings.max_s,
            "use_xnnpack": settings.use_xnnpack,
            "use_gpu": settings.use_gpu,
            "use_nnapi": settings.use_nnapi,
            "enable_op_profiling": settings.op_profiling,
            "taskset": settings.taskset or None,
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


@register
class BenchmarkModelRunner(Runner):
    """TFLite's native benchmark_model (no Python needed on the device)."""

    name = RUNNER_NAME
    auto_order = 10
    #: LiteRT's tool prints count/first/curr/min/max/avg/std and p5/median/p95 per block;
    #: it times invoke() alone (no end-to-end figure).
    latency_reports: ClassVar[dict[str, tuple[str, ...]]] = {
        "invoke": ("min", "p5", "p50", "p95", "max", "mean", "std"),
        "end_to_end": (),
    }
    fields: ClassVar[dict[str, Field]] = {
        "benchmark_binary": f(
            str, "", "path on this host of the native benchmark_model (a build for the device)"
        ),
        "benchmark_build": f(
            str,
            "",
            "what the binary is, as you know it (it has no --version): e.g. the source "
            "commit and build flags of its PROVENANCE; shown with its sha256",
        ),
        "taskset": f(str, "", "CPU mask for benchmark_model, e.g. f0 for the big cores"),
        "use_python_runner": f(
            (bool, str),
            "auto",
            "accuracy on the device with `python` + the edgeq runner: true, false (host), "
            "or auto (when that python has numpy and an interpreter)",
            False,
            (True, False, "auto"),
        ),
    }
    path_fields = ("benchmark_binary",)
    options = OPTIONS

    @classmethod
    def configured(cls, tcfg: TargetConfig, settings: RunSettings) -> bool:
        return resolve_binary(settings, tcfg) is not None

    def effective(self, settings: RunSettings | None = None) -> RunSettings:
        """The settings (default: the runner's) with the target's taskset when the command
        line gave none."""
        s = settings or self.settings
        if not s.taskset and self.tcfg.get("taskset"):
            s = s.with_(taskset=str(self.tcfg.get("taskset"))).validate()
        return s

    def binary(self) -> Path:
        found = require_binary(
            self.settings,
            self.tcfg,
            f'runner = "benchmark_model" but no binary is configured (builds: '
            f"{NIGHTLY_URL.format(flavour='android_aarch64')})",
        )
        return found

    def check(self, target: Target) -> Health:
        """The device's facts, the binary (found, fits the device, executable there) and
        where accuracy will be measured. No Python is required on the device."""
        health = Health()
        settings = self.effective()
        facts = device_facts(target)
        env = environment(facts, settings, None)
        health.environment = env
        environment_checks(health, env)
        try:
            binary = self.binary()
            check_binary(binary, env, target.name)
            remote = target.ensure_file(binary, "-benchmark_model")
            q = shlex.quote(remote)
            target.run(f"[ -x {q} ] || chmod 755 {q}", timeout=30)
        except (UsageError, DeviceError) as exc:
            health.add("benchmark_model", "fail", exc.message, error=exc)
            return health
        health.add(
            "benchmark_model", "ok", f"{binary.name} ({identify(binary, self.tcfg)['version']})"
        )
        choice = target.config.get("use_python_runner", "auto")
        if choice is False:
            health.add("accuracy", "ok", "measured on this host (use_python_runner = false)")
            return health
        usable, why = python_status(target)
        if usable:
            health.add("accuracy", "ok", f"measured on the device with its python ({why})")
        elif choice is True:
            health.add(
                "accuracy",
                "fail",
                f"use_python_runner = true but the device's python cannot run the edgeq runner "
                f"({why})",
                'install numpy and ai-edge-litert for it, or set use_python_runner = "auto"',
            )
        else:
            health.add(
                "accuracy",
                "ok",
                f"measured on this host with the same artifact (no usable python on the "
                f"device: {why})",
            )
        return health

    def measure(self, target: Target, job: Job, progress: Progress | None = None) -> Measurement:
        settings = self.effective(job.settings)
        binary = self.binary()
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        t0 = time.perf_counter()
        with target:
            say(progress, f"connected to {target.name} ({target.describe()})")
            facts = device_facts(target)
            check_binary(binary, environment(facts, settings, None), target.name)
            remote_bin = target.ensure_file(binary, "-benchmark_model")
            q = shlex.quote(remote_bin)
            target.run(f"[ -x {q} ] || chmod 755 {q}", timeout=30)
            if job.compat:
                say(progress, f"checking the model's operators against {target.name}'s binary")
                compat.check_on_binary(target, remote_bin, sha256_file(binary), job.artifact)
            plan = accuracy_python(target) if job.eval_npz is not None else None
            if job.compat and plan is not None and plan[0]:
                say(progress, f"checking the model's operators against {target.name}'s python")
                check_accuracy_python(target, job.artifact)
            remote_model = target.ensure_file(job.artifact, ".tflite")
            say(progress, f"sent {target.bytes_sent:,} bytes")
            workdir = target.workdir
            cmd = argv(settings, remote_bin, remote_model)
            say(progress, f"running benchmark_model on {target.name}")
            t_run = time.perf_counter()
            nonce = os.urandom(6).hex()
            res = target.run(
                sampled_command(cmd, nonce), timeout=settings.timeout, check=False, killable=True
            )
            run_s = time.perf_counter() - t_run
            tool_out, contention = split_sampled(res.stdout, nonce)
            log_text = tool_out + (("\n" + res.stderr) if res.stderr.strip() else "")
            if res.exit_code != 0:
                raise RunnerError.of(
                    _failure(target, res, log_text, settings, facts),
                    res,
                    stderr=log_text,
                )
            log = parse_output(log_text)
            model_doc = _model_on_device(target, job.artifact, remote_model, log)
            accuracy, on_host = None, None
            if job.eval_npz is not None:
                accuracy, on_host = device_accuracy(target, remote_model, job, progress, plan)
            if target.keep:
                say(progress, f"kept the workdir {workdir} on {target.name}")
        build = identify(binary, self.tcfg)
        doc = to_run_document(
            log,
            model=model_doc,
            env=environment(facts, settings, log, build),
            settings=settings,
            accuracy=accuracy,
            binary={**build, "argv": cmd},
            log_text=log_text,
            started_utc=started,
            origin=target.name,
        )
        if contention is not None:
            doc["contention"] = contention
        validate_run(doc, target.name)
        got = Measurement.of(target, doc, run_s, t0, workdir)
        got.host_accuracy = on_host
        return got
