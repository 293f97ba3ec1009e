"""What a device is, as both runners see it: the probe of its environment (machine, CPU,
OS, governor, temperature, python and interpreter) and the health checks that read it."""

from __future__ import annotations

import json
import signal
from typing import Any

from .. import paths
from ..errors import RunnerError, tail
from ..targets import Target
from .base import Health

SETUP_HINT = "device_scripts/setup_device.sh sets up a device's python (numpy + ai-edge-litert)"


#: The last environment each device's python reported in this process (by identity and
#: python): the compatibility check's runtime key when a health check just probed (the lab).
_SEEN: dict[str, dict[str, Any]] = {}


def _seen_key(target: Target) -> str:
    return f"{target.identity()}|{' '.join(target.python_argv())}"


def seen(target: Target) -> dict[str, Any] | None:
    """The environment `probe` last got from this device's python in this process."""
    return _SEEN.get(_seen_key(target))


def probe(target: Target, timeout: float = 120.0) -> dict[str, Any]:
    """What the device's python has: runs the device runner with --probe (stdlib only).
    Killable: a python that hangs is stopped with everything it started."""
    remote_runner = target.ensure_file(paths.runner_path(), ".py")
    res = target.run(
        [*target.python_argv(), remote_runner, "--probe"],
        timeout=timeout,
        check=False,
        killable=True,
    )
    if res.exit_code == 127 or ("not found" in res.stderr and not res.stdout.strip()):
        raise RunnerError.of(
            f"{target.name}: python {target.config.get('python')!r} not found on the device; "
            f'install python3 there or set python = "/path/to/python3" in '
            f"{target.config.where} ({SETUP_HINT})",
            res,
        )
    try:
        env = last_json(res.stdout)["environment"]
        _SEEN[_seen_key(target)] = env
        return env
    except (ValueError, KeyError, TypeError):
        how = f"exit {res.exit_code}"
        if res.exit_code > 128:
            try:
                how += f", killed by {signal.Signals(res.exit_code - 128).name}"
            except ValueError:
                pass
        raise RunnerError.of(
            f"{target.name}: the runner's --probe did not answer with JSON "
            f"({how}): {tail(res.stderr or res.stdout)}",
            res,
        ) from None


def last_json(text: str, window: int = 1 << 18) -> dict[str, Any]:
    """The JSON object that ends `text` (a chatty runtime may print before it); looked for
    in the last `window` characters. ValueError if there is none."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    tail_text = text[-window:]
    decoder = json.JSONDecoder()
    i = len(tail_text)
    while (i := tail_text.rfind("{", 0, i)) >= 0:
        try:
            doc, end = decoder.raw_decode(tail_text, i)
        except ValueError:
            continue
        if isinstance(doc, dict) and not tail_text[end:].strip():
            return doc
    raise ValueError("no JSON document at the end")


def environment_checks(health: Health, env: dict[str, Any]) -> None:
    """The checks that read a device environment (shared by both runners' health checks)."""
    add = health.add
    add(
        "architecture",
        "ok",
        f"{env.get('machine')} · {env.get('cpu_model') or 'cpu unknown'} · "
        f"{env.get('cores') or '?'} cores",
    )
    add("os", "ok", f"{env.get('os')} · kernel {env.get('kernel')}")
    if env.get("emulated"):
        add(
            "emulated",
            "warn",
            f"emulated CPU ({env.get('emulation_evidence')}); latency figures are not "
            f"representative",
        )
    gov = env.get("cpu_governor")
    if gov and gov != "performance":
        add(
            "cpu_governor",
            "warn",
            f"governor is {gov!r}; latency will vary",
            "echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor",
        )
    thr = env.get("throttling")
    if thr and any(v for k, v in thr.items() if k != "raw"):
        add(
            "throttling",
            "warn",
            f"throttling flags {thr['raw']}",
            "check the power supply and cooling",
        )
