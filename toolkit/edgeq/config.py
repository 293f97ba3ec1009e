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

from .budget import BUDGET_FIELDS, load_budget_file
from .errors import ConfigError
from .evaldata import DATA_FIELDS
from .fields import Field, TargetConfig, check_value, f, read_toml, validate_section
from .models.recipe import MODEL_FIELDS
from .runners import runner_class, runner_fields, runner_path_fields
from .targets import TRANSPORTS, transport_class, transport_fields
from .targets.local import LocalTarget

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

# [budget] is declared by its owner (`edgeq.budget`), [model] by the model recipe
# (`edgeq.models.recipe`); both are imported above so `config.BUDGET_FIELDS` and
# `config.MODEL_FIELDS` keep working.


def target_fields(transport: str) -> dict[str, Field]:
    """Every key a `[targets.NAME]` table of this transport may hold: the common keys,
    the transport's own (from its module in edgeq.targets) and the runners' (edgeq.runners)."""

    return {**transport_fields(transport), **runner_fields()}


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
        if name == "local":
            LocalTarget.this_interpreter(targets[name].values)
    budget = validate_section(f"{src} [budget]", raw.get("budget", {}), BUDGET_FIELDS)
    model = validate_section(f"{src} [model]", raw.get("model", {}), MODEL_FIELDS)
    lab = validate_section(f"{src} [lab]", raw.get("lab", {}), LAB_FIELDS)
    inventory = lab["inventory"]
    if found and "://" not in inventory and not Path(inventory).expanduser().is_absolute():
        lab["inventory"] = str(found.parent / inventory)

    data = validate_section(f"{src} [data]", raw.get("data", {}), DATA_FIELDS)
    if found and data["path"] and not Path(data["path"]).expanduser().is_absolute():
        data["path"] = str(found.parent / data["path"])
    sweep = raw.get("sweep", {})
    if not isinstance(sweep, dict):
        raise ConfigError(f"{src} [sweep]: must be a table")
    return Config(found, targets, budget, model, lab, data, sweep)
