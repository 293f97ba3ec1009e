"""A lab device: one inventory entry, how to reach it (a `TargetConfig`) and the lab's view
of it (tags, features, overrides). Backends, the scheduler and the health check use it;
`inventory.py` builds it from `[devices.NAME]`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigError
from ..fields import TargetConfig
from ..targets import make_target


@dataclass(frozen=True)
class Device:
    """One inventory entry: how to reach it (a TargetConfig) and the lab's view of it."""

    name: str
    target: TargetConfig
    tags: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    enabled: bool = True
    modes: tuple[str, ...] = ()
    timeout_s: float = 900.0
    retries: int = 2
    password_env: str = ""
    lock_key: str = ""
    budget: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    regression: dict[str, Any] = field(default_factory=dict)

    @property
    def transport(self) -> str:
        return self.target.transport

    @property
    def identity(self) -> str:
        """What the lock is keyed by: the physical device, whatever the entry is called."""
        return self.lock_key or make_target(self.target).identity()

    @property
    def address(self) -> str:
        return make_target(self.target).describe()

    @property
    def pace_key(self) -> str | None:
        """The address it shares with other devices (an sshd, an adb server): what the
        lab's connection and health-check pacing is keyed by."""
        return make_target(self.target).pace_key()

    def matches(self, selector: str | None) -> bool:
        """`--only` selects by device name, tag or feature."""
        return selector is None or selector in (self.name, *self.tags, *self.features)

    def resolved_target(self) -> TargetConfig:
        """The TargetConfig with credentials filled in from the environment.

        Raises ConfigError (the device is quarantined, the lab goes on) when the variable
        named by `password_env` is not set.
        """
        if not self.password_env:
            return self.target
        secret = os.environ.get(self.password_env)
        if secret is None:
            raise ConfigError(
                f"device {self.name!r}: environment variable {self.password_env} "
                f"(password_env) is not set; export it before `edgeq lab run`"
            )
        return replace(self.target, values={**self.target.values, "password": secret})
