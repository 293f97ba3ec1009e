"""One registry type for every extension point of edgeq.

Transports, runners, quant modes, model families, report formats and lab backends are each
a `Registry`: implementations register themselves (a decorator, or one call), lookups of an
unknown name raise edgeq's own error with a "choose from …" list, and iteration follows the
order of `modules` (whatever imported an implementation first), so tables and `--help` are stable.

    TRANSPORTS = Registry("transport", key="transport", error=ConfigError,
                          package=__name__, modules=("local", "ssh", "adb", "adb_ssh"))

    @TRANSPORTS.register
    class SSHTarget(Target): ...

    TRANSPORTS.get("ssh", where="edgeq.toml [targets.pi]")

Adding an implementation is one new module plus its name in `modules` (the one
registration line). The modules are imported on first use, so the package that owns a
registry never imports its implementations at import time (no cycles through the registry).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from .errors import UsageError

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """Named implementations of one kind, in registration order."""

    def __init__(
        self,
        kind: str,
        *,
        key: str | Callable[[T], str] = "name",
        error: type[Exception] = UsageError,
        package: str | None = None,
        modules: Sequence[str] = (),
    ) -> None:
        self.kind = kind
        self._key = key if callable(key) else (lambda item, _k=key: getattr(item, _k))
        self.error = error
        self._package = package
        self._modules = tuple(modules)
        self._items: dict[str, T] = {}
        self._origin: dict[str, str] = {}  # name -> the module that registered it
        self._loaded = not self._modules
        self._loading = False

    # -- registration ----------------------------------------------------------------
    def register(self, item: T) -> T:
        """Register `item` under its key (usable as a class decorator). A second
        registration under the same key is a programming error."""
        name = self._key(item)
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if name in self._items and self._items[name] is not item:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        self._origin[name] = self._caller()
        return item

    def _caller(self) -> str:
        """The implementation module that is registering (through a wrapper or not)."""
        frame = sys._getframe(2)
        for _ in range(6):
            if frame is None:
                break
            module = frame.f_globals.get("__name__", "")
            if module.rsplit(".", 1)[-1] in self._modules:
                return module
            frame = frame.f_back
        return ""

    def _rank(self, name: str) -> int:
        """Position of the registering module in `modules` (unknown ones last), so the
        order is the declared one whatever imported an implementation first."""
        short = self._origin.get(name, "").rsplit(".", 1)[-1]
        return self._modules.index(short) if short in self._modules else len(self._modules)

    def _ordered(self) -> list[tuple[str, T]]:
        self.load()
        order = {n: i for i, n in enumerate(self._items)}
        return sorted(self._items.items(), key=lambda kv: (self._rank(kv[0]), order[kv[0]]))

    def load(self) -> Registry[T]:
        """Import the implementation modules (once); they register themselves."""
        if self._loaded or self._loading:
            return self
        self._loading = True
        try:
            for module in self._modules:
                importlib.import_module(f"{self._package}.{module}" if self._package else module)
            self._loaded = True
        finally:
            self._loading = False
        return self

    # -- lookup ----------------------------------------------------------------------
    def get(self, name: str, where: str = "", error: type[Exception] | None = None) -> T:
        """The implementation called `name`; an unknown name raises `error` (the
        registry's own by default) naming the choices."""
        self.load()
        if name not in self._items:
            raise (error or self.error)(self.unknown(name, where))
        return self._items[name]

    def unknown(self, name: str, where: str = "") -> str:
        """The message for an unknown name (for callers that word their own error)."""
        prefix = f"{where}: " if where else ""
        return f"{prefix}unknown {self.kind} {name!r}; choose from {', '.join(self.names())}"

    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self._ordered())

    def items(self) -> list[tuple[str, T]]:
        return self._ordered()

    def values(self) -> list[T]:
        return [v for _, v in self._ordered()]

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._items

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._items)})"
