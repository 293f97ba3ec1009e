"""The lab's live display draws what fits the terminal, whatever the size of the lab."""

from __future__ import annotations

import io

from rich.console import Console

from edgeq.cli.lab import LiveProgress
from edgeq.lab.records import Event


def _display(height: int) -> tuple[LiveProgress, Console]:
    console = Console(
        file=io.StringIO(), force_terminal=True, color_system=None, width=160, height=height
    )
    return LiveProgress(console=console, live=True), console


def _drawn(live: LiveProgress, console: Console) -> list[str]:
    console.file = io.StringIO()
    console.print(live.progress.get_renderable())
    return [line for line in console.file.getvalue().splitlines() if line.strip()]


def test_a_lab_bigger_than_the_terminal_draws_a_summary_and_the_devices_at_work():
    live, console = _display(height=30)
    names = [f"pi{i}" for i in range(256)]
    for name in names:
        live(Event(name, "queued", total=1))
    for name in names[:40]:
        live(Event(name, "running", "m.tflite: measuring", done=0, total=1))
    for name in names[:10]:
        live(Event(name, "done", status="pass"))
    for name in names[10:12]:
        live(Event(name, "done", "latency over budget", status="fail"))
    lines = _drawn(live, console)
    assert len(lines) <= 30  # a redraw costs what fits, not 256 rows
    assert lines[0].lstrip().startswith("lab") and "12/256" in lines[0]
    assert "216 queued" in lines[0]
    assert "2 failing" in lines[0]
    drawn = [line.split()[0] for line in lines[1:]]
    # devices at work only: rows freed by the finished ones went to those waiting for one
    assert sorted(drawn) == sorted(names[12:38]) and "28 at work (26 shown)" in lines[0]
    # a device that finishes frees its row for the next one at work
    live(Event("pi12", "done", status="pass"))
    drawn = [line.split()[0] for line in _drawn(live, console)[1:]]
    assert "pi12" not in drawn and "pi38" in drawn and len(drawn) == 26


def test_a_lab_that_fits_draws_every_device_as_before():
    live, console = _display(height=30)
    for i in range(8):
        live(Event(f"pi{i}", "queued", total=1))
    live(Event("pi0", "done", status="pass"))
    lines = _drawn(live, console)
    assert [line.split()[0] for line in lines] == [f"pi{i}" for i in range(8)]  # no summary
    assert "PASS" in lines[0] and "1/1" in lines[0] and "0/1" in lines[1]
