"""The `edgeq` application: global options, command groups, entry point."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from .. import __version__
from ..targets import sshquiet
from . import cache as cache_cli
from . import common, demo, device, pipeline
from . import compare as compare_cli
from . import inspect as inspect_cli
from . import lab as lab_cli
from . import profile as profile_cli
from . import sweep as sweep_cli

app = typer.Typer(
    name="edgeq",
    cls=common.EdgeqGroup,
    help="Prove quantized TFLite models on real ARM hardware: train, convert, deploy, judge.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 pass, 1 budget/lab failure, 2 usage/config error, "
    "3 device/transport error, 130 interrupted.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgeq {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show full tracebacks for every error, and TensorFlow's and paramiko's own "
            "log lines.",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """edgeq command line."""
    common.state.debug = debug
    if debug:
        os.environ.setdefault("EDGEQ_TF_VERBOSE", "1")  # TensorFlow's own lines too
    else:
        common.quiet_tensorflow()
        sshquiet.quiet_logs()  # a handshake abandoned under load: edgeq's one line, no traceback


app.add_typer(demo.app, name="demo")
app.add_typer(lab_cli.app, name="lab")
app.add_typer(cache_cli.app, name="cache")
pipeline.register(app)
inspect_cli.register(app)
device.register(app)
compare_cli.register(app)
sweep_cli.register(app)
profile_cli.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
