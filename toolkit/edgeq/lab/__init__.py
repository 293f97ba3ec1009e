"""The hardware lab: an inventory of devices, a fan-out that survives misbehaving devices,
a SQLite history of every result, regression detection against it, and reports.

    inventory.py  `lab.toml`: lab defaults, runner settings, budget, regression policy,
                  `[devices.NAME]` (the keys of `[targets.NAME]` plus lab-only keys)
    lock.py       a per-device lock (flock on a file keyed by device identity)
    history.py    the SQLite store (versioned schema, one transaction per result)
    regress.py    noise bands over the last K passing runs; "failing since"; recoveries
    runner.py     health check → quarantine → parallel runs with retries → history
    report/       the report document and its formats (HTML, Markdown, JUnit XML, JSON)
"""

from __future__ import annotations

from .inventory import Device, Inventory, load_inventory
from .runner import LabRun, ResultRecord, run_lab

__all__ = ["Device", "Inventory", "LabRun", "ResultRecord", "load_inventory", "run_lab"]
