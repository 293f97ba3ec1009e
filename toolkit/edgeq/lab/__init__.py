"""The hardware lab: an inventory of devices, a fan-out that survives misbehaving devices,
a SQLite history of every result, regression detection against it, and reports.

    inventory.py  `lab.toml`: lab defaults, runner settings, budget, regression policy,
                  `[devices.NAME]` (the keys of `[targets.NAME]` plus lab-only keys)
    backends/     where devices come from and how one is held: `file` (lab.toml + flock),
                  `labgrid` (a coordinator's places and their reservations)
    models.py     the models of a run (given, listed, or trained), staged once
    scheduler.py  per device: lease → health check → each model → history, in parallel
    health.py     the health check (doctor for the device's runner) with retries
    retry.py      the one retry policy (transient errors only, backoff, deadline)
    records.py    results, device outcomes and the run, keeping the error objects
    metrics.py    a deploy's figures as flat metrics and check rows
    history.py    the SQLite store (versioned schema, one transaction per result)
    regress.py    noise bands over the last K passing runs; "failing since"; recoveries
    report/       the report document and its formats (HTML, Markdown, JUnit XML, JSON)
"""

from __future__ import annotations

from .device import Device
from .inventory import Inventory, load_inventory
from .records import LabRun, ResultRecord
from .scheduler import run_lab

__all__ = ["Device", "Inventory", "LabRun", "ResultRecord", "load_inventory", "run_lab"]
