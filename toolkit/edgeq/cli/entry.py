"""The `edgeq` console script: as little as possible runs before Ctrl-C is handled.

Importing the command line takes a second or more (numpy, rich, the lab); a Ctrl-C in
that time ends quietly with exit 130 instead of a traceback. Typer turns one during
argument parsing into 130 as well, and inside a command `EdgeqGroup` handles it (and
SIGTERM, SIGHUP) after the device is cleaned up.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from .main import app
    except KeyboardInterrupt:
        sys.stderr.write("\nedgeq: interrupted\n")
        sys.exit(130)
    app()


if __name__ == "__main__":
    main()
