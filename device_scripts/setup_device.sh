#!/bin/sh
# Prepare a Raspberry Pi (or any Linux board) for edgeq: a virtualenv with numpy and a TFLite
# interpreter for the device runner. Run it ON the device:
#
#   sh setup_device.sh [VENV_DIR]            # default ~/edgeq-venv
#   EDGEQ_RUNTIME=tflite-runtime sh setup_device.sh   # force the older runtime (numpy<2)
#
# It prints the `python = "..."` line to put in the target's [targets.NAME] of edgeq.toml.
# ai-edge-litert is tried first (aarch64 wheels for Python 3.9-3.12); tflite-runtime 2.14
# (Python <= 3.11, numpy < 2) is the fallback.
set -eu

venv=${1:-$HOME/edgeq-venv}
runtime=${EDGEQ_RUNTIME:-auto}
py=$(command -v python3 || true)
[ -n "$py" ] || { echo "setup_device: python3 not found; sudo apt install python3 python3-venv" >&2; exit 1; }

if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv" || {
        echo "setup_device: cannot create a venv; sudo apt install python3-venv" >&2
        exit 1
    }
fi
pip="$venv/bin/python -m pip --disable-pip-version-check"
$pip install --quiet --upgrade pip

installed=""
if [ "$runtime" = auto ] || [ "$runtime" = ai-edge-litert ]; then
    if $pip install --quiet numpy ai-edge-litert; then installed=ai-edge-litert; fi
fi
if [ -z "$installed" ] && { [ "$runtime" = auto ] || [ "$runtime" = tflite-runtime ]; }; then
    if $pip install --quiet "numpy<2" tflite-runtime; then installed=tflite-runtime; fi
fi
[ -n "$installed" ] || { echo "setup_device: no interpreter wheel fits this python/CPU" >&2; exit 1; }

"$venv/bin/python" - <<'PY'
import platform, numpy
try:
    from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    rt = "ai-edge-litert"
except ImportError:
    from tflite_runtime.interpreter import Interpreter  # noqa: F401
    rt = "tflite-runtime"
print(f"setup_device: ok: {platform.machine()}, python {platform.python_version()}, "
      f"numpy {numpy.__version__}, {rt}")
PY
gov=/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor
if [ -r "$gov" ] && [ "$(cat "$gov")" != performance ]; then
    echo "setup_device: note: CPU governor is $(cat "$gov"); for stable latency:"
    echo "  echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"
fi
echo "setup_device: in edgeq.toml, [targets.NAME]:  python = \"$venv/bin/python\""
