"""JUnit XML: a testsuite per device, a testcase per device × model × check."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from ... import textsafe
from ...status import INFRA
from ..regress import INFRA as INFRA_CHECKS
from . import text
from .base import ReportFormat
from .registry import FORMATS

COUNTERS = ("tests", "failures", "errors", "skipped")


def _case(suite: ET.Element, r: dict[str, Any], c: dict[str, Any], counts: dict[str, int]):
    counts["tests"] += 1
    case = ET.SubElement(
        suite, "testcase", classname=f"{r['device']}.{r['model_label']}", name=c["name"]
    )
    if c.get("passed") is None:
        counts["skipped"] += 1
        ET.SubElement(case, "skipped", message=c.get("message") or r["status"])
    elif c["passed"] is False:
        infra = c["kind"] in INFRA_CHECKS
        tag = "error" if infra else "failure"
        counts["errors" if infra else "failures"] += 1
        kind = r["status"] if infra else c["kind"]
        el = ET.SubElement(case, tag, message=c.get("message") or "", type=kind)
        detail = [c.get("message") or c["name"]]
        since = text.since_for_check(r, c["name"])
        if since:
            detail.append(since)
        if infra and r.get("error_text"):
            detail.append(r["error_text"])
        el.text = "\n".join(detail)


def render(doc: dict[str, Any]) -> str:
    run = doc["run"]
    root = ET.Element("testsuites", name=f"edgeq lab {run['run_id']}")
    totals = dict.fromkeys(COUNTERS, 0)
    by_device: dict[str, list[dict[str, Any]]] = {}
    for r in doc["results"]:
        by_device.setdefault(r["device"], []).append(r)
    for device, rows in by_device.items():
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"lab.{device}",
            timestamp=run["started_utc"],
            hostname=run["host"],
        )
        props = ET.SubElement(suite, "properties")
        for k in ("run_id", "edgeq_version", "git_sha"):
            ET.SubElement(props, "property", name=k, value=str(run.get(k) or ""))
        ET.SubElement(props, "property", name="address", value=rows[0]["address"])
        counts = dict.fromkeys(COUNTERS, 0)
        for r in rows:
            checks = r["checks"]
            if not checks:
                # A result with no checks (a busy device) still shows up, as what it is.
                passed = {"pass": True, "fail": False}.get(r["status"])
                checks = [
                    {
                        "name": "result",
                        "kind": "run" if r["status"] in INFRA else "result",
                        "passed": False if r["status"] in ("error", "quarantined") else passed,
                        "message": r["reason"] or r["status"],
                    }
                ]
            for c in checks:
                _case(suite, r, c, counts)
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
    for k, v in totals.items():
        root.set(k, str(v))
    for el in root.iter():  # device text must not make the file unreadable (XML 1.0 chars)
        el.attrib.update({k: textsafe.xml(v) for k, v in el.attrib.items()})
        if el.text:
            el.text = textsafe.xml(el.text)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


FORMAT = FORMATS.register(
    ReportFormat("junit", ".xml", "JUnit XML, a testcase per device × model × check", render)
)
