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

CONFIG_NAME = "edgeq.toml"


@dataclass(frozen=True)
class Field:
    """A config key: its type(s), default, and what it means."""

    types: tuple[type, ...]
    default: Any
    doc: str
    required: bool = False
    choices: tuple[Any, ...] | None = None


def _f(types, default, doc, required=False, choices=None) -> Field:
    if not isinstance(types, tuple):
        types = (types,)
    return Field(types, default, doc, required, choices)


COMMON_FIELDS: dict[str, Field] = {
    "transport": _f(str, "local", "how to reach the device", True, ("local", "ssh", "adb")),
    "python": _f(str, "python3", "the python that runs the device runner"),
    "workdir": _f(str, "", "base folder on the device for edgeq's cache and per-run folders"),
    "description": _f(str, "", "free text shown by `edgeq targets`"),
    "tags": _f(list, [], "labels for lab selection (`--only TAG`)"),
    "env": _f(dict, {}, "environment variables set for the runner on the device"),
}

TRANSPORT_FIELDS: dict[str, dict[str, Field]] = {
    "local": {},
    "ssh": {
        "host": _f(str, "", "device hostname or IP address", True),
        "port": _f(int, 22, "SSH port"),
        "user": _f(str, "", "login user (default: your local user name)"),
        "key_file": _f(str, "", "private key file (default: ssh-agent and ~/.ssh keys)"),
        "known_hosts": _f(str, "~/.ssh/known_hosts", "known_hosts file used to verify the host"),
        "accept_new_host_key": _f(
            bool, False, "trust and record a host key seen for the first time"
        ),
        "connect_timeout": _f((int, float), 10, "seconds to wait for the SSH connection"),
        "password": _f(str, "", "password login (prefer keys)"),
    },
    "adb": {
        "serial": _f(str, "", "device serial (default: $ANDROID_SERIAL, or the only device)"),
        "adb_host": _f(str, "", "host of the adb server (default: localhost)"),
        "adb_port": _f(int, 0, "port of the adb server (default: $ANDROID_ADB_SERVER_PORT/5037)"),
        "adb_path": _f(str, "adb", "the adb client executable"),
        "benchmark_binary": _f(
            str, "", "path on this host of the native benchmark_model (android_aarch64 build)"
        ),
        "taskset": _f(str, "", "CPU mask for benchmark_model, e.g. f0 for the big cores"),
        "use_python_runner": _f(
            (bool, str),
            "auto",
            "accuracy on the device with `python` + the edgeq runner: true, false (host), "
            "or auto (when that python has numpy and an interpreter)",
            False,
            (True, False, "auto"),
        ),
    },
}

BUDGET_FIELDS: dict[str, Field] = {
    "max_model_kb": _f((int, float), 50.0, "largest model file allowed, in KB (1024 bytes)"),
    "max_latency_ms": _f((int, float), 1.0, "slowest steady-state latency allowed, in ms"),
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
    "min_accuracy": _f((int, float), 0.98, "accuracy floor on the evaluation data (0..1)"),
    "max_accuracy_drop_pp": _f(
        (int, float), 0.5, "largest drop vs the float32 model on the host, in percentage points"
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

SECTIONS = {"targets", "budget", "model", "lab"}

#: Host-side file keys: `~` expanded, relative paths taken from the config file's folder.
PATH_KEYS = ("key_file", "known_hosts", "benchmark_binary")


@dataclass(frozen=True)
class TargetConfig:
    name: str
    transport: str
    values: dict[str, Any]
    source: str = "built-in"

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


@dataclass(frozen=True)
class Config:
    path: Path | None
    targets: dict[str, TargetConfig]
    budget: dict[str, Any]
    model: dict[str, Any]
    lab: dict[str, Any] = field(default_factory=dict)

    def target(self, name: str) -> TargetConfig:
        if name not in self.targets:
            where = str(self.path) if self.path else f"no {CONFIG_NAME} found"
            known = ", ".join(sorted(self.targets))
            raise ConfigError(
                f"unknown target {name!r} ({where}); known targets: {known}. "
                f"Add a [targets.{name}] section to {CONFIG_NAME}"
            )
        return self.targets[name]


def _check_value(where: str, key: str, spec: Field, value: Any) -> Any:
    ok = isinstance(value, spec.types) and not (isinstance(value, bool) and bool not in spec.types)
    if not ok:
        names = " or ".join(t.__name__ for t in spec.types)
        raise ConfigError(
            f"{where}: key {key!r} must be {names} ({spec.doc}), got {type(value).__name__} "
            f"{value!r}"
        )
    if spec.choices and value not in spec.choices:
        raise ConfigError(
            f"{where}: key {key!r} must be one of {', '.join(map(str, spec.choices))}, "
            f"got {value!r}"
        )
    if float in spec.types and isinstance(value, (int, float)) and value < 0:
        raise ConfigError(f"{where}: key {key!r} must be >= 0, got {value!r}")
    return value


def validate_section(where: str, raw: dict[str, Any], fields: dict[str, Field]) -> dict[str, Any]:
    """Defaults filled in, unknown keys and wrong types refused (the error names the key)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(fields))}"
        )
    out: dict[str, Any] = {}
    for key, spec in fields.items():
        if key in raw:
            out[key] = _check_value(where, key, spec, raw[key])
        elif spec.required:
            raise ConfigError(f"{where}: missing required key {key!r} ({spec.doc})")
        else:
            out[key] = spec.default
    return out


def target_fields(transport: str) -> dict[str, Field]:
    return {**COMMON_FIELDS, **TRANSPORT_FIELDS[transport]}


def validate_target(name: str, raw: dict[str, Any], source: str) -> TargetConfig:
    where = f"{source} [targets.{name}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    transport = raw.get("transport")
    if transport is None:
        raise ConfigError(f"{where}: missing required key 'transport' (local, ssh or adb)")
    _check_value(where, "transport", COMMON_FIELDS["transport"], transport)
    values = validate_section(where, raw, target_fields(transport))
    base = Path(source).parent if source not in ("built-in", "test") else None
    for key in PATH_KEYS:
        if values.get(key):
            p = Path(values[key]).expanduser()
            if base is not None and not p.is_absolute():
                p = base / p
            values[key] = str(p)
    if transport == "ssh":
        if not 0 < values["port"] < 65536:
            raise ConfigError(f"{where}: key 'port' must be in 1..65535, got {values['port']}")
        if values["connect_timeout"] <= 0:
            raise ConfigError(f"{where}: key 'connect_timeout' must be > 0")
    return TargetConfig(name, transport, values, source)


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
    if found and not Path(lab["inventory"]).expanduser().is_absolute():
        lab["inventory"] = str(found.parent / lab["inventory"])
    return Config(found, targets, budget, model, lab)


def load_budget_file(path: Path) -> dict[str, Any]:
    """A budget TOML: either a [budget] table or the keys at top level."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"budget file not found: {p}")
    raw = read_toml(p)
    section = raw.get("budget", raw)
    return validate_section(f"{p} [budget]", section, BUDGET_FIELDS)
