"""Python environments that play a device's own Python, built once and cached.

The default "Pi" runs tflite-runtime 2.14 with numpy < 2 — a different runtime and numpy
than the host's ai-edge-litert — as a real Raspberry Pi would. Cached under
$EDGEQ_TEST_CACHE (default ~/.cache/edgeq-tests), keyed by what is installed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

PI_PACKAGES = ("tflite-runtime==2.14.0", "numpy<2")
NO_INTERPRETER_PACKAGES = ("numpy<2",)


def cache_root() -> Path:
    return Path(os.environ.get("EDGEQ_TEST_CACHE", Path.home() / ".cache" / "edgeq-tests"))


def base_python() -> str:
    """Python 3.11 (tflite-runtime 2.14's newest wheels) if present, else this python."""
    return shutil.which("python3.11") or sys.executable


def ensure_venv(packages: tuple[str, ...], label: str) -> Path:
    """A venv with `packages`; returns its python. Built once (locked), reused afterwards."""
    py = base_python()
    version = subprocess.run(
        [py, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    key = hashlib.sha256("|".join([version, *packages]).encode()).hexdigest()[:12]
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / f"{label}-{key}"
    marker = venv / ".complete"
    with open(root / f".{label}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([py, "-m", "venv", str(venv)], check=True)
            if packages:
                subprocess.run(
                    [
                        str(venv / "bin" / "python"),
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        *packages,
                    ],
                    check=True,
                )
            marker.write_text("\n".join(packages) + "\n")
    return venv / "bin" / "python"
