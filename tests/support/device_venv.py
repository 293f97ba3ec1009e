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


def find_python(version: str) -> str | None:
    """A working `python<version>` (PATH, pyenv's versions, /usr/bin), or None."""
    import glob

    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(str(Path.home() / f".pyenv/versions/{version}.*/bin/python3")))
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for c in candidates:
        if c and Path(c).exists():
            ok = subprocess.run([c, "-c", "pass"], capture_output=True).returncode == 0
            if ok:
                return c
    return None


def base_python() -> str:
    """Python 3.11 (tflite-runtime 2.14's newest wheels) if present, else this python."""
    return shutil.which("python3.11") or sys.executable


def ensure_venv(packages: tuple[str, ...], label: str, python: str | None = None) -> Path:
    """A venv with `packages`; returns its python. Built once (locked), reused afterwards."""
    py = python or base_python()
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
