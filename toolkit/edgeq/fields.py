"""Declared configuration keys: one `Field` per key (types, default, one-line doc, choices,
bounds), validated in one place, and the one TOML reader. Every room declares its own
fields — each transport, each runner, the run settings, the budget (`budget.py`), the model
recipe (`models/recipe.py`), the lab backends — and `config` / the lab inventory compose
them. An error names the file, the section and the key."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import ConfigError


@dataclass(frozen=True)
class Field:
    """A config key: its type(s), default, and what it means."""

    types: tuple[type, ...]
    default: Any
    doc: str
    required: bool = False
    choices: tuple[Any, ...] | None = None
    #: numbers: the smallest allowed value (None: any, but never NaN or infinity)
    minimum: float | None = None
    #: numbers: True if the minimum itself is not allowed (> instead of >=)
    exclusive: bool = False
    #: numbers: the largest allowed value
    maximum: float | None = None
    #: turns a string into the value (e.g. "98%" → 0.98); ValueError if it cannot
    parse: Callable[[str], Any] | None = None
    #: added to a bounds error (e.g. how to write a percent)
    hint: str = ""


def f(
    types: type | tuple[type, ...],
    default: Any,
    doc: str,
    required: bool = False,
    choices: tuple[Any, ...] | None = None,
    minimum: float | None = None,
    exclusive: bool = False,
    maximum: float | None = None,
    parse: Callable[[str], Any] | None = None,
    hint: str = "",
) -> Field:
    """Shorthand for a Field (a single type need not be a tuple)."""
    if not isinstance(types, tuple):
        types = (types,)
    return Field(types, default, doc, required, choices, minimum, exclusive, maximum, parse, hint)


def percent(text: str) -> float:
    """A fraction from an explicit percent: "98%" or "98 %" → 0.98 (ValueError otherwise)."""
    t = text.strip()
    if not t.endswith("%"):
        raise ValueError("not a percent")
    return float(t[:-1].strip()) / 100


def check_value(where: str, key: str, spec: Field, value: Any) -> Any:
    """`value` if it fits `spec`, else ConfigError naming where, the key and what it must be."""
    given = value
    hint = f"; {spec.hint}" if spec.hint else ""
    if isinstance(value, str) and spec.parse is not None:
        try:
            value = spec.parse(value)
        except ValueError:
            raise ConfigError(
                f"{where}: key {key!r} must be a number ({spec.doc}), got {given!r}{hint}"
            ) from None
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
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(f"{where}: key {key!r} must be a finite number, got {given!r}")
        lo, hi = spec.minimum, spec.maximum
        if lo is not None and hi is not None and not spec.exclusive and not lo <= value <= hi:
            raise ConfigError(
                f"{where}: key {key!r} must be in {lo:g}..{hi:g} ({spec.doc}), got {given!r}{hint}"
            )
        if lo is not None and (value <= lo if spec.exclusive else value < lo):
            raise ConfigError(
                f"{where}: key {key!r} must be {'>' if spec.exclusive else '>='} {lo:g}, "
                f"got {value!r}"
            )
        if hi is not None and value > hi:
            raise ConfigError(f"{where}: key {key!r} must be <= {hi:g}, got {value!r}")
    return value


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


def validate_section(where: str, raw: Any, fields: dict[str, Field]) -> dict[str, Any]:
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
            out[key] = check_value(where, key, spec, raw[key])
        elif spec.required:
            raise ConfigError(f"{where}: missing required key {key!r} ({spec.doc})")
        else:
            out[key] = spec.default
    return out


def validate_partial(where: str, raw: Any, fields: dict[str, Field]) -> dict[str, Any]:
    """Validate an override table: only the keys it sets come back."""
    full = validate_section(
        where, raw, {k: Field(**{**v.__dict__, "required": False}) for k, v in fields.items()}
    )
    return {k: full[k] for k in raw}


@dataclass(frozen=True)
class TargetConfig:
    """A validated device entry: `[targets.NAME]` of edgeq.toml, or `[devices.NAME]` of a
    lab inventory. `section` and `source` let every message point at the right table."""

    name: str
    transport: str
    values: dict[str, Any]
    source: str = "built-in"
    section: str = ""

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    @property
    def where(self) -> str:
        """The table to fix, for messages: `[targets.pi]`, or `[devices.pi] of lab.toml`."""
        section = f"[{self.section or 'targets.' + self.name}]"
        if self.section.startswith("devices.") and self.source not in ("built-in", "test"):
            from pathlib import Path

            return f"{section} of {Path(self.source).name}"
        return section
