"""Lab backends (inventory sources and device leases), one module each, chosen by the
inventory's URL scheme. To add one: a module with a `@register`ed `Backend` subclass, and
its name in the `modules` of `BACKENDS` below. See `base.py` for the interface."""

from __future__ import annotations

from urllib.parse import urlsplit

from ...errors import ConfigError
from ...registry import Registry
from .base import Backend, BackendUnavailable, DeviceBusy, Lease

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendUnavailable",
    "DeviceBusy",
    "Lease",
    "backend_class",
    "register",
    "scheme_of",
]

BACKENDS: Registry[type[Backend]] = Registry(
    "backend", key="scheme", error=ConfigError, package=__name__, modules=("file", "labgrid")
)

#: Class decorator: make `cls` the backend of its `scheme`.
register = BACKENDS.register


def scheme_of(spec: str) -> str:
    """`labgrid` for `labgrid://…`, `file` for a path (or `file://…`)."""
    try:
        scheme = urlsplit(str(spec)).scheme
    except ValueError:  # e.g. "labgrid://[::1": the URL's own parser gives up
        scheme = str(spec).split("://", 1)[0] if "://" in str(spec) else ""
    return scheme if scheme and len(scheme) > 1 else "file"  # a Windows drive is no scheme


def backend_class(spec: str) -> type[Backend]:
    scheme = scheme_of(spec)
    if scheme not in BACKENDS:
        raise ConfigError(
            f"inventory {spec!r}: unknown scheme {scheme!r}; use a lab.toml path or one of "
            f"{', '.join(s + '://' for s in sorted(BACKENDS) if s != 'file')}"
        )
    return BACKENDS.get(scheme)
