"""Targets: where the benchmark runs. `make_target` picks the transport from the config."""

from __future__ import annotations

from ..config import TargetConfig
from ..errors import ConfigError
from .base import CommandResult, Target, quote_argv

__all__ = ["CommandResult", "Target", "make_target", "quote_argv"]


def make_target(config: TargetConfig, keep: bool = False) -> Target:
    """A Target for the config (nothing is opened yet)."""
    if config.transport == "local":
        from .local import LocalTarget

        return LocalTarget(config, keep)
    if config.transport == "ssh":
        from .ssh import SshTarget

        return SshTarget(config, keep)
    if config.transport == "adb":
        try:
            from .adb import AdbTarget
        except ImportError:
            raise ConfigError(
                f"target {config.name!r}: the adb transport is not available in this edgeq"
            ) from None
        return AdbTarget(config, keep)
    raise ConfigError(f"target {config.name!r}: unknown transport {config.transport!r}")
