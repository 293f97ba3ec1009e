"""Lying devices (issue 21): figures that cannot be true, and text meant to drive the
terminal or the reports. The device's python is replaced by a script that runs the real
runner and then edits one thing in its result, the way a broken or hostile device would."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from edgeq.lab.history import History
from tests.support import report_history as rh
from tests.support.faults import EASY, error_line, leftovers, script

RUN_THEN_EDIT = (
    '"{py}" "$@"; rc=$?\n'
    'while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done\n'
    '[ -n "$out" ] && "{py}" "{editor}" "$out"\n'
    "exit $rc\n"
)
EDITOR = """import json, sys
d = json.load(open(sys.argv[1]))
inv = d["latency_ms"]["invoke"]
{edit}
json.dump(d, open(sys.argv[1], "w"))
"""


def _editing_python(tmp_path, pi_python, edit: str) -> str:
    editor = tmp_path / "edit_result.py"
    editor.write_text(EDITOR.format(edit=edit))
    return script(tmp_path / "editing-python", RUN_THEN_EDIT.format(py=pi_python, editor=editor))


@pytest.mark.parametrize(
    "edit, says",
    [
        ("inv['min'] = -5.0", "latency_ms.invoke.min = -5 ms is negative"),
        ("inv['p50'] = inv['max'] * 2", "latency_ms.invoke.p50 = "),
        ("inv['mean'] = inv['max'] + 1", "latency_ms.invoke.mean = "),
        ("inv['std'] = (inv['max'] - inv['min']) * 3 + 1", "latency_ms.invoke.std = "),
        ("inv['count'] = len(d['latency_samples_ms']['invoke']) - 1", "is below the"),
    ],
    ids=["negative", "p50-above-max", "mean-outside", "std-too-wide", "count-below-samples"],
)
def test_figures_that_cannot_be_true_are_refused(
    edit, says, pi_deploy, tmp_path, pi_python, pi_workdir
):
    res = pi_deploy(python=_editing_python(tmp_path, pi_python, edit))
    assert res.exit_code == 3, res.stderr
    line = error_line(res.stderr)
    assert "the device's result is inconsistent:" in line and says in line
    assert "never a baseline" in line
    assert not list(tmp_path.glob("results/*.json"))  # not saved: never a baseline
    assert leftovers(pi_workdir) == []


def test_escape_sequences_from_a_device_are_shown_not_obeyed(
    pi_deploy, tmp_path, pi_python, pi_workdir
):
    edit = "d['environment']['machine'] = '\\x1b[2J\\x1b[Hverdict: PASS\\x07'"
    res = pi_deploy(python=_editing_python(tmp_path, pi_python, edit), budget=EASY)
    assert res.exit_code == 0, res.stderr
    out = res.stdout + res.stderr
    assert "\x1b[2J" not in out and "\x07" not in out
    assert "\\x1b[2J\\x1b[Hverdict: PASS\\x07" in res.stdout  # shown, as text
    # a failing device's stderr, in the one error line, is neutral too
    bad = script(
        tmp_path / "lying-python", "printf '\\033[2J\\033[1Averdict: PASS\\n' >&2\nexit 7\n"
    )
    res = pi_deploy(python=bad)
    assert res.exit_code == 3
    line = error_line(res.stderr)
    assert "\x1b" not in res.stderr and "\\x1b[2J" in line


def test_device_text_in_the_junit_and_markdown_reports_is_neutral(cli, tmp_path):
    db = rh.fill(tmp_path / "history.sqlite", nights=1)
    evil = "pi\x07\x1b[2J<script>alert(1)</script>"
    with History(db) as h:
        row = rh.base_row(1, evil, "model_int8.tflite", "error")
        row["reason"] = "cannot connect <img src=x onerror=alert(1)> \x00\x1b[31mred"
        rh.record(h, row)
    res = cli("lab", "report", "--db", db, "-f", "md,junit", "-o", tmp_path / "r")
    assert res.exit_code == 0, res.stderr
    xml_text = (tmp_path / "r" / "lab-report.xml").read_text()
    root = ET.fromstring(xml_text)  # well-formed: CI keeps the nightly
    suites = [s.get("name") for s in root.iter("testsuite")]
    assert "lab.pi\\x07\\x1b[2J<script>alert(1)</script>" in suites
    md = (tmp_path / "r" / "lab-report.md").read_text()
    assert "<script>" not in md and "<img" not in md and "\x1b" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "&lt;img src=x onerror=alert(1)&gt;" in md


def test_a_huge_result_is_refused_and_unknown_keys_are_dropped(
    pi_deploy, tmp_path, pi_python, pi_workdir
):
    huge = _editing_python(tmp_path, pi_python, "d['notes'] = 'x' * (2 * 1024 * 1024)")
    res = pi_deploy(python=huge, result_max_mb=1)
    assert res.exit_code == 3, res.stderr
    line = error_line(res.stderr)
    assert "the device's result is 2.0 MB, over the 1 MB cap" in line
    assert "result_max_mb" in line
    assert not list(tmp_path.glob("results/*.json"))
    assert leftovers(pi_workdir) == []
    extra = _editing_python(tmp_path, pi_python, "d['surprise'] = {'a': 1}; d['x_y'] = 2")
    res = pi_deploy(python=extra, budget=EASY)
    assert res.exit_code == 0, res.stderr
    assert "dropped: surprise, x_y" in res.stderr
    (saved,) = tmp_path.glob("results/*.json")
    run = json.loads(saved.read_text())["run"]
    assert "surprise" not in run and "x_y" not in run
    assert run["dropped_keys"] == ["surprise", "x_y"]
