"""edgeq's own errors. Each carries the exit code the CLI uses and a message with the fix.

Exit codes (documented in the README):
    0  pass
    1  budget or lab failure (the pipeline worked, the model did not meet its budget)
    2  usage, input or configuration error
    3  device or transport error
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DEVICE = 3
EXIT_INTERRUPTED = 130


class EdgeqError(Exception):
    """A known failure: the CLI prints the message on one line and exits with `exit_code`.

    The object is kept until it is rendered (the lab's records hold it): its type, its
    message (which names the fix), whether retrying may help (`transient`) and, for device
    errors, the evidence (command, exit status, output tails) in `details`."""

    exit_code = EXIT_USAGE
    #: worth another attempt after a pause (the device may come back)
    transient = False

    def __init__(self, message: str, *, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict:
        return {
            "type": type(self).__name__,
            "message": self.message,
            "transient": self.transient,
            **self.details,
        }


class UsageError(EdgeqError):
    """Bad arguments, bad input files, a bad configuration."""


class ConfigError(UsageError):
    """`edgeq.toml`, a budget file or an inventory is invalid; the message names file and key."""


class DataError(UsageError):
    """A dataset cannot be found or does not have the expected layout."""


class ModelError(UsageError):
    """A model or artifact file is missing, corrupt or of the wrong kind."""


class BudgetFailed(EdgeqError):
    """The pipeline ran, but the verdict is a failure."""

    exit_code = EXIT_FAILED


class DeviceError(EdgeqError):
    """Anything between the host and the device went wrong. Carries the evidence when there
    is a device command behind it: the command, its exit status and the output tails."""

    exit_code = EXIT_DEVICE

    def __init__(
        self,
        message: str,
        *,
        details: dict | None = None,
        command: str = "",
        exit_code: int | None = None,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        evidence: dict = {}
        if command:
            evidence["command"] = command
        if exit_code is not None:
            evidence["exit_status"] = exit_code
        if stdout.strip():
            evidence["stdout_tail"] = tail(stdout)
        if stderr.strip():
            evidence["stderr_tail"] = tail(stderr)
        super().__init__(message, details={**evidence, **(details or {})})
        self.command = command
        self.status = exit_code
        self.stdout = stdout
        self.stderr = stderr

    @classmethod
    def of(cls, message: str, res, **kw):
        """The error for a device command's result `res` (a CommandResult), with its
        evidence: command, exit status and output tails."""
        return cls(
            message,
            command=res.command,
            exit_code=res.exit_code,
            stdout=kw.pop("stdout", res.stdout),
            stderr=kw.pop("stderr", res.stderr),
            **kw,
        )


class ConnectError(DeviceError):
    """The device cannot be reached (refused, unresolvable, timed out, no device attached,
    connection lost): the states a rebooting or flaky device passes through."""

    transient = True


class AuthError(DeviceError):
    """The device refused our credentials, or its identity could not be verified."""


class HostKeyError(AuthError):
    """The device's SSH host key is unknown or does not match known_hosts."""


class CommandError(DeviceError):
    """A command on the device exited non-zero. Carries the command, exit code and output."""


class CommandTimeout(DeviceError):
    """A command on the device ran past its timeout (it was killed)."""


class RunnerError(DeviceError):
    """The device runner failed or answered with something that is not a valid result."""


def tail(text: str, lines: int = 5, width: int = 160) -> str:
    """The last few non-empty lines of `text`, each cut to `width`, joined with ' | '."""
    from .textsafe import one_line

    kept = [one_line(ln.strip()) for ln in (text or "").splitlines() if ln.strip()][-lines:]
    return " | ".join(ln if len(ln) <= width else ln[: width - 1] + "…" for ln in kept)
