"""edgeq.toml for tests, and the light run settings and budget the tests share."""

from __future__ import annotations

from pathlib import Path

#: Light runner settings: the lab's orchestration is under test, not the model's speed.
LIGHT_RUN = {"runs": 20, "min_s": 0.0, "warmup_runs": 2, "warmup_min_s": 0.0}
#: A budget every working device passes with the 1-epoch test model.
GENEROUS = {
    "max_model_kb": 200,
    "max_latency_ms": 100,
    "min_accuracy": 0.3,
    "max_accuracy_drop_pp": 20,
}


#: Light measuring flags for tests: the pipeline is under test, not the model's speed.
FAST_FLAGS = ("--runs", "20", "--min-s", "0", "--warmup-runs", "2")


def write_config(path: Path, targets: dict[str, dict], budget: dict | None = None) -> Path:
    """Write an edgeq.toml with the given [targets.NAME] tables and [budget]."""
    import json

    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {val(x)}" for k, x in v.items()) + "}"
        return json.dumps(str(v))

    lines = []
    for name, values in targets.items():
        lines.append(f"[targets.{json.dumps(name)}]")
        lines += [f"{k} = {val(v)}" for k, v in values.items()]
        lines.append("")
    if budget:
        lines.append("[budget]")
        lines += [f"{k} = {val(v)}" for k, v in budget.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
