"""What the lab keeps of a failure: the error object until it is rendered, its evidence
(command, exit status, output tails) in the history, messages that name the inventory's
own table — and progress off a terminal that is plain text (no markup, no escapes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from edgeq.errors import RunnerError
from edgeq.lab import load_inventory, run_lab
from edgeq.lab.history import History
from tests.support.lab import write_inventory

#: The fix the runner's checks append (device_scripts/setup_device.sh installs everything).
SETUP_HINT = "device_scripts/setup_device.sh sets up a device's python (numpy + ai-edge-litert)"


def _broken_python(tmp_path: Path) -> str:
    script = tmp_path / "broken-python"
    script.write_text("#!/bin/sh\necho 'numpy: cannot open shared object file' >&2\nexit 7\n")
    script.chmod(0o755)
    return str(script)


def test_a_failure_keeps_its_error_object_and_evidence(tmp_path, lab_sections, artifacts):
    folder, _ = artifacts
    lab_sections["lab"]["models"] = [str(folder / "model_int8.tflite")]
    inv_path = write_inventory(
        tmp_path / "lab.toml",
        lab_sections,
        {"box": {"transport": "local", "python": _broken_python(tmp_path)}},
    )
    run = run_lab(load_inventory(inv_path))
    (dev,) = run.devices
    assert dev.status == "quarantined"
    assert isinstance(dev.error, RunnerError)  # the object, not a string
    assert dev.error.status == 7 and "broken-python" in dev.error.command
    (rec,) = run.results
    assert rec.error is dev.error and rec.error_type == "RunnerError"
    assert rec.reason == (
        "python: box: the runner's --probe did not answer with JSON (exit 7): numpy: cannot "
        f"open shared object file (fix: {SETUP_HINT})"
    )

    with History(Path(lab_sections["lab"]["db"])) as h:
        (row,) = h.results()
    err = row["error"]
    assert err["type"] == "RunnerError" and err["transient"] is False
    assert err["exit_status"] == 7 and "broken-python" in err["command"]
    assert "cannot open shared object file" in err["stderr_tail"]
    assert "exit status: 7" in row["error_text"]


def test_a_fix_names_the_inventorys_own_table(tmp_path, lab_sections, artifacts):
    folder, _ = artifacts
    lab_sections["lab"]["models"] = [str(folder / "model_int8.tflite")]
    missing = tmp_path / "no-such-python"
    inv_path = write_inventory(
        tmp_path / "lab.toml", lab_sections, {"gone": {"transport": "local", "python": missing}}
    )
    run = run_lab(load_inventory(inv_path))
    (rec,) = run.results
    # the table of lab.toml, never edgeq.toml's [targets.NAME] (and without string surgery)
    assert rec.reason.startswith(
        f"python: gone: python {str(missing)!r} not found on the device; install python3 there "
        'or set python = "/path/to/python3" in [devices.gone] of lab.toml ('
    ), rec.reason
    assert "[targets." not in rec.reason and "edgeq.toml" not in rec.reason


def test_progress_off_a_terminal_is_plain_text(tmp_path, lab_sections, artifacts):
    folder, _ = artifacts
    lab_sections["lab"]["models"] = [str(folder / "model_int8.tflite")]
    inv_path = write_inventory(
        tmp_path / "lab.toml",
        lab_sections,
        {
            "host": {"transport": "local"},
            "box": {"transport": "local", "python": _broken_python(tmp_path)},
        },
    )
    edgeq = Path(sys.executable).with_name("edgeq")
    proc = subprocess.run(
        [str(edgeq), "lab", "run", "--inventory", str(inv_path), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "TERM": "xterm-256color"},
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["counts"]["quarantined"] == 1
    err = proc.stderr
    assert "box: QUARANTINED" in err and "host: PASS" in err, err
    for markup in ("[yellow]", "[/]", "[red]", "[green]", "[dim]", "\\[", "\x1b["):
        assert markup not in err, (markup, err)
