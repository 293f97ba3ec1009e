"""What every command shares: consoles, `--json` output, error reporting and exit codes.

Human output goes to stdout through `out`; progress and diagnostics go to stderr through
`err`. With `--json`, stdout carries exactly one JSON document and nothing else.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup
from typer.exceptions import TyperException

from .. import interrupts, textsafe
from ..errors import EXIT_FAILED, ConfigError, EdgeqError

#: Off a terminal (cron, CI logs, pipes) rich would lay tables out for 80 columns and break
#: names and headers mid-word; there the console is as wide as a table needs (up to this),
#: unless COLUMNS says otherwise.
OFF_TTY_WIDTH = 400


def _width(stream: Any) -> int | None:
    if os.environ.get("COLUMNS"):
        return None  # rich reads it
    try:
        return None if stream.isatty() else OFF_TTY_WIDTH
    except (AttributeError, ValueError):
        return OFF_TTY_WIDTH


out = Console(highlight=False, soft_wrap=True, width=_width(sys.stdout))
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_width(sys.stderr))


def quiet_tensorflow() -> None:
    """Silence TensorFlow's start-up chatter (the oneDNN notice, absl and C++ warnings) in
    edgeq's own process, unless the user set TF_CPP_MIN_LOG_LEVEL: edgeq's output is
    edgeq's. Called unless --debug; must run before tensorflow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in ("tensorflow", "absl", "h5py", "keras"):
        logging.getLogger(name).setLevel(logging.ERROR)


class _State:
    debug: bool = False
    json: bool = False


state = _State()

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else there.")
]
BudgetOpt = Annotated[
    Path | None,
    typer.Option("--budget", help="Budget TOML (default: the [budget] table of the config)."),
]
TargetOpt = Annotated[str, typer.Option("--target", "-t", help="Target name from edgeq.toml.")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="edgeq.toml to use (default: ./edgeq.toml if present)."),
]
NoWaitOpt = Annotated[
    bool,
    typer.Option(
        "--no-wait",
        help="If another edgeq (a deploy, a bench or the lab) is using the device, fail at "
        "once as busy (exit 3) instead of waiting for it.",
    ),
]


def use_json(flag: bool) -> bool:
    """Record whether this command answers in JSON (errors then answer in JSON too)."""
    state.json = bool(flag)
    return state.json


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "to_dict"):
        return _clean(obj.to_dict())
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _clean(obj.item())
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(_clean(obj), indent=2)


def emit_json(obj: Any) -> None:
    """Write the command's single JSON document to stdout."""
    sys.stdout.write(dumps(obj) + "\n")
    sys.stdout.flush()


def report_error(exc: EdgeqError) -> int:
    """One line on stderr (plus a JSON document on stdout under --json); returns the exit code."""
    msg = textsafe.one_line(exc.message)  # device text must not drive the terminal
    err.print(f"[bold red]edgeq: error:[/] {escape(msg)}", markup=True)
    if state.json:
        emit_json({"ok": False, "exit_code": exc.exit_code, "error": exc.to_dict()})
    return exc.exit_code


def one_line(text: str, width: int = 300) -> str:
    """`text` on one line (whitespace runs collapsed), cut to `width`."""
    flat = textsafe.one_line(" ".join(str(text).split()))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def report_internal(exc: Exception) -> int:
    """A bug (an exception edgeq does not know): one line naming it, never a traceback
    unless --debug; exit 1."""
    what = f"{type(exc).__name__}: {one_line(str(exc)) or '(no message)'}"
    err.print(
        f"edgeq: internal error: {what} (run again with --debug for the traceback)",
        markup=False,
        highlight=False,
    )
    if state.json:
        emit_json(
            {
                "ok": False,
                "exit_code": EXIT_FAILED,
                "error": {"type": type(exc).__name__, "message": what, "internal": True},
            }
        )
    return EXIT_FAILED


class EdgeqGroup(TyperGroup):
    """Root group: edgeq's known errors become one line + their exit code, any other
    exception one "internal error" line + exit 1, and Ctrl-C, SIGTERM and SIGHUP an
    interruption (130, 143, 129) after the usual cleanup."""

    def invoke(self, ctx: typer.Context) -> Any:
        state.json = False
        try:
            with interrupts.handlers():
                return super().invoke(ctx)
        except EdgeqError as exc:
            if state.debug:
                traceback.print_exc()
            ctx.exit(report_error(exc))
        except KeyboardInterrupt as exc:
            if state.debug:
                traceback.print_exc()
            name = f" ({exc.name})" if isinstance(exc, interrupts.Interrupted) else ""
            err.print(f"edgeq: interrupted{name}", markup=False)
            ctx.exit(interrupts.exit_code(exc))
        except (typer.Exit, typer.Abort, TyperException):  # Typer's own signalling
            raise
        except sqlite3.DatabaseError as exc:  # a damaged history: the file's fault, not ours
            if state.debug:
                traceback.print_exc()
            ctx.exit(
                report_error(
                    ConfigError(
                        f"the lab history is damaged ({exc}); restore it from a backup, or "
                        f"point --db at another file (`sqlite3 FILE .recover` may save rows)"
                    )
                )
            )
        except Exception as exc:
            if state.debug:
                traceback.print_exc()
            ctx.exit(report_internal(exc))
