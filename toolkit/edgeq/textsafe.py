"""Neutralising text a device (or an inventory) controls before people see it.

A device's result, its stderr and its name reach a terminal, a JUnit file and a Markdown
report. On a terminal, an escape sequence can clear the screen or print a fake
"verdict: PASS"; in XML a control character makes the whole file unreadable; in Markdown,
raw HTML runs in the viewer. Each place gets its own rule:

- `terminal`: control characters (C0 but tab and newline, DEL, C1) shown as `\\xNN`.
- `one_line`: the same, newlines and tabs too.
- `xml`: characters XML 1.0 forbids shown as `\\xNN` (the XML writer escapes the rest).
- `markdown`: HTML escaped, `|` escaped, on one line (for a table cell).
- `deep`: `terminal` on every string of a JSON-like structure.
"""

from __future__ import annotations

import html
import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_ALL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# XML 1.0 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _hex(m: re.Match[str]) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def terminal(text: str) -> str:
    """`text` with every control character but tab and newline shown as `\\xNN`."""
    return _CONTROL.sub(_hex, str(text))


def one_line(text: str) -> str:
    """`text` with every control character (newlines too) shown as `\\xNN`."""
    return _CONTROL_ALL.sub(_hex, str(text))


def xml(text: str) -> str:
    """`text` with the characters XML 1.0 cannot hold shown as `\\xNN` (also the C1
    controls and DEL, which XML allows but terminals obey)."""
    return _CONTROL.sub(_hex, _NOT_XML.sub(_hex, str(text)))


def markdown(text: str) -> str:
    """`text` safe in a Markdown table cell: HTML escaped, `|` escaped, one line."""
    return html.escape(one_line(text), quote=True).replace("|", "\\|")


def deep(obj: Any) -> Any:
    """`terminal` applied to every string (and key) of nested dicts and lists."""
    if isinstance(obj, str):
        return terminal(obj)
    if isinstance(obj, dict):
        return {deep(k) if isinstance(k, str) else k: deep(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [deep(v) for v in obj]
    return obj
