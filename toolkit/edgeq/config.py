"""`edgeq.toml`: targets, budget and the model recipe used when deploy trains on its own.

Found in the current directory (or given with `--config`). Every key is declared with its
type, default and a one-line doc, and validated on load; an error names the file, the
section and the key. A `local` target always exists.

    [targets.pi]
    transport = "ssh"
    host = "raspberrypi.local"
    user = "pi"
    key_file = "~/.ssh/id_ed25519"

    [budget]
    max_model_kb = 50
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from . import models, quantmodes
from .errors import ConfigError
from .fields import Field, TargetConfig, check_value, f, percent, validate_section

__all__ = [
    "BUDGET_FIELDS",
    "CONFIG_NAME",
    "LAB_FIELDS",
    "MODEL_FIELDS",
    "Config",
    "Field",
    "TargetConfig",
    "check_value",
    "load",
    "load_budget_file",
    "local_target",
    "read_toml",
    "target_fields",
    "validate_section",
    "validate_target",
]

CONFIG_NAME = "edgeq.toml"


_f = f  # the shorthand for declaring a Field


def target_fields(transport: str) -> dict[str, Field]:
    """Every key a `[targets.NAME]` table of this transport may hold: the common keys,
    the transport's own (from its module in edgeq.targets) and the runners' (edgeq.runners)."""
    from .runners import runner_fields
    from .targets import transport_fields

    return {**transport_fields(transport), **runner_fields()}


BUDGET_FIELDS: dict[str, Field] = {
    "max_model_kb": _f(
        (int, float), 50.0, "largest model file allowed, in KB (1024 bytes)", minimum=0
    ),
    "max_latency_ms": _f(
        (int, float), 1.0, "slowest steady-state latency allowed, in ms", minimum=0
    ),
    "latency_percentile": _f(
        str,
        "p90",
        "which latency figure is judged",
        False,
        ("min", "p50", "p90", "p95", "p99", "max", "mean"),
    ),
    "latency_kind": _f(
        str, "invoke", "invoke() alone, or the end_to_end call", False, ("invoke", "end_to_end")
    ),
    "min_accuracy": _f(
        (int, float),
        0.98,
        "accuracy floor on the evaluation data, a fraction: 0.98 = 98 %",
        minimum=0,
        maximum=1,
        parse=percent,
        hint='for a percent, write it as one: "98%"',
    ),
    "max_accuracy_drop_pp": _f(
        (int, float),
        0.5,
        "largest drop vs the float32 model on the host, in percentage points",
        minimum=0,
        maximum=100,
    ),
    "require_accuracy": _f(
        bool, False, "fail the verdict when accuracy could not be measured (e.g. --no-data)"
    ),
    "min_output_agreement": _f(
        (int, float),
        None,
        "lowest output agreement with the host reference: top-1 agreement for a classifier, "
        "else cosine similarity (0..1)",
        minimum=0,
        maximum=1,
    ),
}

MODEL_FIELDS: dict[str, Field] = {
    "dataset": _f(str, "mnist", "dataset to train on", False, ("mnist", "fashion_mnist")),
    "epochs": _f(int, 3, "training epochs"),
    "batch_size": _f(int, 128, "training batch size"),
    "seed": _f(int, 0, "random seed"),
    "family": _f(
        str,
        models.DEFAULT_FAMILY,
        "model family (book = the book's CNN; bngap, dsconv = compact nets)",
        False,
        models.FAMILIES,
    ),
    "width": _f((int, float), 1.0, "filter width multiplier"),
    "learning_rate": _f((int, float), 1e-3, "Adam learning rate"),
    "lr_schedule": _f(str, "constant", "constant or cosine", False, ("constant", "cosine")),
    "augment": _f(bool, False, "random shifts/rotations while training"),
    "mode": _f(str, "int8", "conversion mode deployed", False, quantmodes.MODES),
    "calibration_samples": _f(int, 500, "representative images from the training split"),
}

LAB_FIELDS: dict[str, Field] = {
    "inventory": _f(str, "lab.toml", "the lab inventory `edgeq lab` uses without --inventory"),
}

SECTIONS = {"targets", "budget", "model", "lab", "data", "sweep"}


@dataclass(frozen=True)
class Config:
    path: Path | None
    targets: dict[str, TargetConfig]
    budget: dict[str, Any]
    model: dict[str, Any]
    lab: dict[str, Any] = field(default_factory=dict)
    #: the [data] table: your evaluation data and its preprocessing (see edgeq.evaldata)
    data: dict[str, Any] = field(default_factory=dict)
    #: the [sweep] table as written (edgeq.sweep.parse_grid validates it)
    sweep: dict[str, Any] = field(default_factory=dict)

    def target(self, name: str) -> TargetConfig:
        if name not in self.targets:
            where = str(self.path) if self.path else f"no {CONFIG_NAME} found"
            known = ", ".join(sorted(self.targets))
            raise ConfigError(
                f"unknown target {name!r} ({where}); known targets: {known}. "
                f"Add a [targets.{name}] section to {CONFIG_NAME}"
            )
        return self.targets[name]


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def validate_target(
    name: str,
    raw: dict[str, Any],
    source: str,
    section: str = "",
    extra_fields: dict[str, Field] | None = None,
    where: str = "",
) -> TargetConfig:
    """A `[targets.NAME]` table (or a lab's `[devices.NAME]`, with `section`) validated
    against the keys its transport and the runners declare."""
    from .runners import runner_class, runner_path_fields
    from .targets import TRANSPORTS, transport_class

    section = section or f"targets.{name}"
    where = where or f"{source} [{section}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    transport = raw.get("transport")
    if transport is None:
        raise ConfigError(f"{where}: missing required key 'transport' ({', '.join(TRANSPORTS)})")
    if not isinstance(transport, str) or transport not in TRANSPORTS:
        raise ConfigError(
            f"{where}: key 'transport' must be one of {', '.join(TRANSPORTS)}, got {transport!r}"
        )
    if "password" in raw:
        raise ConfigError(
            f"{where}: key 'password': a password must not be written in a file; export it in "
            f'an environment variable and set password_env = "VARIABLE" instead'
        )
    cls = transport_class(transport)
    fields = {**target_fields(transport), **(extra_fields or {})}
    values = validate_section(where, raw, fields)
    bad = [k for k in values.get("env") or {} if not _ENV_NAME.fullmatch(str(k))]
    if bad:
        raise ConfigError(
            f"{where}: key 'env': {bad[0]!r} is not a shell variable name (letters, digits, _)"
        )
    runner_class(values["runner"], where)
    base = Path(source).parent if source not in ("built-in", "test") else None
    for key in (*cls.path_fields, *runner_path_fields()):
        if values.get(key):
            p = Path(values[key]).expanduser()
            if base is not None and not p.is_absolute():
                p = base / p
            values[key] = str(p)
    cls.check_config(values, where)
    return TargetConfig(name, transport, values, source, section)


def local_target(python: str | None = None) -> TargetConfig:
    values = validate_section(
        "built-in [targets.local]", {"transport": "local"}, target_fields("local")
    )
    values["python"] = python or sys.executable
    values["description"] = "this machine (no hardware needed)"
    return TargetConfig("local", "local", values)


def find_config(path: Path | None = None) -> Path | None:
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        return p
    candidate = Path.cwd() / CONFIG_NAME
    return candidate if candidate.is_file() else None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid TOML (byte {exc.start} is not UTF-8); save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None


def load(path: Path | None = None) -> Config:
    """Load `edgeq.toml` (from `path` or the current directory); built-in defaults otherwise."""
    found = find_config(path)
    raw = read_toml(found) if found else {}
    src = str(found) if found else "built-in"
    unknown = sorted(set(raw) - SECTIONS)
    if unknown:
        raise ConfigError(
            f"{src}: unknown section [{unknown[0]}]; allowed: {', '.join(sorted(SECTIONS))}"
        )
    targets = {"local": local_target()}
    raw_targets = raw.get("targets", {})
    if not isinstance(raw_targets, dict):
        raise ConfigError(f"{src}: [targets] must hold [targets.NAME] tables")
    for name, traw in raw_targets.items():
        targets[name] = validate_target(name, traw, src)
        if name == "local" and targets[name].values["python"] == "python3":
            targets[name].values["python"] = sys.executable
    budget = validate_section(f"{src} [budget]", raw.get("budget", {}), BUDGET_FIELDS)
    model = validate_section(f"{src} [model]", raw.get("model", {}), MODEL_FIELDS)
    lab = validate_section(f"{src} [lab]", raw.get("lab", {}), LAB_FIELDS)
    inventory = lab["inventory"]
    if found and "://" not in inventory and not Path(inventory).expanduser().is_absolute():
        lab["inventory"] = str(found.parent / inventory)
    from .evaldata import DATA_FIELDS

    data = validate_section(f"{src} [data]", raw.get("data", {}), DATA_FIELDS)
    if found and data["path"] and not Path(data["path"]).expanduser().is_absolute():
        data["path"] = str(found.parent / data["path"])
    sweep = raw.get("sweep", {})
    if not isinstance(sweep, dict):
        raise ConfigError(f"{src} [sweep]: must be a table")
    return Config(found, targets, budget, model, lab, data, sweep)


def load_budget_file(path: Path) -> dict[str, Any]:
    """A budget TOML: either a [budget] table or the keys at top level."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"budget file not found: {p}")
    raw = read_toml(p)
    section = raw.get("budget", raw)
    return validate_section(f"{p} [budget]", section, BUDGET_FIELDS)
