"""Import TensorFlow and Keras quietly, once, only when a command needs them."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import threading
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
    if "tensorflow" not in sys.modules:
        # the oneDNN notice and absl's pre-init lines are written at import, whatever
        # TF_CPP_MIN_LOG_LEVEL says: keep them off stderr (EDGEQ_TF_VERBOSE=1 keeps them)
        with native_stderr_to_log():
            import tensorflow
    import tensorflow

    return tensorflow


def keras():
    tf()
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


@contextlib.contextmanager
def native_stderr_to_log() -> Iterator[None]:
    """Keep TF's C++ prints (e.g. the MLIR quantizer's settings line) off stderr.

    Redirects file descriptor 2 for the duration, unless EDGEQ_TF_VERBOSE=1. Python-level
    errors still propagate as exceptions and are reported after it is restored.
    """
    if os.environ.get("EDGEQ_TF_VERBOSE"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


#: What LiteRT's C++ prints on fd 2 the first time a process applies its default delegate:
#: news, not a problem (EDGEQ_TF_VERBOSE=1, i.e. --debug, keeps it).
RUNTIME_NOTICES = (
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "INFO: Initialized TensorFlow Lite runtime.",
)
_FD2_LOCK = threading.Lock()


@contextlib.contextmanager
def runtime_notices_dropped() -> Iterator[list[str]]:
    """Run the block with fd 2 captured, then write back every line but RUNTIME_NOTICES.

    Unlike native_stderr_to_log, nothing else is lost: a real error the runtime prints in
    the block still reaches stderr (after the block). Serialised by a lock, since fd 2 is
    the process's (lab threads allocate interpreters in parallel). Yields a list that holds
    the notices dropped once the block is over.
    """
    dropped: list[str] = []
    if os.environ.get("EDGEQ_TF_VERBOSE"):
        yield dropped
        return
    with _FD2_LOCK, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            yield dropped
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept: list[bytes] = []
            for line in sink.read().splitlines(keepends=True):
                text = line.decode(errors="replace").strip()
                if text in RUNTIME_NOTICES:
                    dropped.append(text)
                else:
                    kept.append(line)
            if kept:
                os.write(2, b"".join(kept))
