"""Import TensorFlow and Keras quietly, once, only when a command needs them."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator


def quiet() -> None:
    """Silence TF's C++ INFO/WARNING chatter (set EDGEQ_TF_VERBOSE=1 to keep it)."""
    if not os.environ.get("EDGEQ_TF_VERBOSE"):
        import warnings

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")
        for module in ("keras", "tensorflow", "absl"):
            warnings.filterwarnings("ignore", module=module)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def tf():
    quiet()
    import tensorflow

    return tensorflow


def keras():
    quiet()
    import keras as k

    return k


@contextlib.contextmanager
def stdout_to_log() -> Iterator[None]:
    """Keep Keras/TF's Python-level prints off stdout (stdout is for results and --json).

    They go to stderr with EDGEQ_TF_VERBOSE=1, otherwise nowhere.
    """
    sink = sys.stderr if os.environ.get("EDGEQ_TF_VERBOSE") else io.StringIO()
    with contextlib.redirect_stdout(sink):
        yield
