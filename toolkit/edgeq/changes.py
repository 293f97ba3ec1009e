"""What changed between two measurements: the first thing to ask of a regression.

A deploy result (schema edgeq.deploy/1, or its `run` document alone) carries the model's
sha256, the runtime and its version, the runner, the edgeq version, the device's OS, kernel
and governor, and the settings of the run. `what_changed(a, b)` lists every one of them
that differs, in a fixed order (the likeliest causes of a latency change first):

    [{"field": "runtime_version", "label": "runtime version", "a": "2.3.0", "b": "2.4.0"}, ...]

A field missing on one side is listed only when the other side has it (older documents
did not record everything). `describe(changes)` is the one line the terminal, the JSON and
the reports show.
"""

from __future__ import annotations

from typing import Any

#: (key, label, where in a run document); settings come from run.settings.
FIELDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("model_sha256", "model sha256", ("model", "sha256")),
    ("runtime", "runtime", ("environment", "runtime")),
    ("runtime_version", "runtime version", ("environment", "runtime_version")),
    ("runner", "runner", ("runner", "name")),
    ("runner_version", "runner version", ("runner", "version")),
    ("os", "device OS", ("environment", "os")),
    ("kernel", "kernel", ("environment", "kernel")),
    ("machine", "machine", ("environment", "machine")),
    ("cpu_model", "CPU", ("environment", "cpu_model")),
    ("governor", "governor", ("environment", "cpu_governor")),
    ("python", "device python", ("environment", "python")),
    ("numpy", "device numpy", ("environment", "numpy")),
)
#: Settings that change what is measured (the rest — e.g. agreement seeds — do not).
SETTINGS: tuple[str, ...] = (
    "threads",
    "repeat",
    "delegates_requested",
    "delegates_applied",
    "use_xnnpack",
    "use_gpu",
    "use_nnapi",
    "warmup_runs",
    "warmup_min_s",
    "runs",
    "min_s",
    "max_samples",
    "input_shapes",
)


def _get(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = doc
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def facts(result: dict[str, Any]) -> dict[str, Any]:
    """The comparable facts of a deploy result or of a bare run document."""
    run = result.get("run") if isinstance(result.get("run"), dict) else result
    out: dict[str, Any] = {}
    for key, _label, path in FIELDS:
        out[key] = _get(run, path)
    if out["model_sha256"] is None:
        out["model_sha256"] = _get(result, ("artifact", "sha256"))
    out["edgeq_version"] = result.get("edgeq_version")
    if out["governor"] is None:
        out["governor"] = _get(run, ("validity", "governor"))
    settings = run.get("settings") if isinstance(run.get("settings"), dict) else {}
    host = _get(result, ("host", "settings"))
    host = host if isinstance(host, dict) else {}
    for key in SETTINGS:
        # the run's own record first (what the device did), then what the host asked for
        out[f"settings.{key}"] = settings.get(key, host.get(key) if key != "threads" else None)
    if out["settings.threads"] is None:
        out["settings.threads"] = _get(run, ("environment", "threads"))
    return out


def _label(key: str) -> str:
    for k, label, _ in FIELDS:
        if k == key:
            return label
    if key == "edgeq_version":
        return "edgeq version"
    return key.split(".", 1)[-1].replace("_", " ")


def _order(key: str) -> int:
    keys = ["model_sha256", "runtime", "runtime_version", "runner", "runner_version",
            "edgeq_version", "os", "kernel", "machine", "cpu_model", "governor", "python",
            "numpy"]  # fmt: skip
    return keys.index(key) if key in keys else len(keys)


def diff_facts(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Every fact that differs (a missing fact on both sides is not a change)."""
    out = []
    for key in sorted(set(a) | set(b), key=lambda k: (_order(k), k)):
        va, vb = a.get(key), b.get(key)
        if va is None and vb is None:
            continue
        if key.startswith("settings.") and (va is None or vb is None):
            continue  # an older document that did not record the setting
        if va != vb:
            out.append({"field": key, "label": _label(key), "a": va, "b": vb})
    return out


def what_changed(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """What differs between two deploy results (or run documents), A then B."""
    return diff_facts(facts(a), facts(b))


def _short(value: Any) -> str:
    if value is None:
        return "–"
    text = str(value)
    return text[:12] if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text


def describe(changes: list[dict[str, Any]]) -> str:
    """One line: "runtime version 2.3.0 → 2.4.0; threads 4 → 1" (or "nothing recorded")."""
    if not changes:
        return "nothing recorded changed"
    return "; ".join(f"{c['label']} {_short(c['a'])} → {_short(c['b'])}" for c in changes)
