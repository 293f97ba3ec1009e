"""The status vocabulary, defined once: what a lab result (or a device) can come out as.

Every part of edgeq that names an outcome — the lab's scheduler, the history's CHECK
constraint, the regression module, the CLI's colours and every report format — takes the
words, their order of severity, their colour and their symbol from here.

    pass         measured, and every check passed
    fail         measured, but a budget or regression check failed
    suspect      measured, but the run's validity is not `valid` (contended, dispersed,
                 frequency or temperature moved): its latency is neither a regression nor
                 a baseline; deterministic checks (accuracy, size, budget) still judge it
    error        could not be measured (device or transport error after the retries)
    quarantined  the device failed its health check, nothing was measured
    busy         the device was held by somebody else for longer than lock_timeout_s
    skipped      the device had nothing to run (no model of its modes); never in history
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Status(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    SUSPECT = "suspect"
    ERROR = "error"
    QUARANTINED = "quarantined"
    BUSY = "busy"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Look:
    """How a status is shown: a colour never alone (a symbol and a word go with it)."""

    rank: int  # 0 = worst; reports sort by it
    symbol: str
    rich: str  # a rich style for the terminal
    css: str  # a hex colour for HTML (distinguishable without red/green vision)
    label: str


LOOKS: dict[Status, Look] = {
    Status.ERROR: Look(0, "!", "red", "#b3261e", "ERROR"),
    Status.QUARANTINED: Look(1, "⊘", "magenta", "#7b3fa0", "QUARANTINED"),
    Status.FAIL: Look(2, "✗", "red", "#c65d00", "FAIL"),
    Status.SUSPECT: Look(3, "?", "cyan", "#00796b", "SUSPECT"),
    Status.BUSY: Look(4, "◷", "yellow", "#8a6d00", "BUSY"),
    Status.SKIPPED: Look(5, "–", "yellow", "#6b6b6b", "SKIPPED"),
    Status.PASS: Look(6, "✓", "green", "#1f6fb2", "PASS"),
}

#: Statuses a result row in the history can have (a skipped device writes no row).
RECORDED: tuple[str, ...] = tuple(s.value for s in Status if s is not Status.SKIPPED)
#: Outcomes that say nothing about the model: the device could not be measured.
INFRA: tuple[str, ...] = (Status.ERROR.value, Status.QUARANTINED.value, Status.BUSY.value)
#: Outcomes that do not make a lab run fail (a busy device was somebody else's to use; a
#: suspect run's latency says nothing either way).
HARMLESS: tuple[str, ...] = (
    Status.PASS.value,
    Status.SKIPPED.value,
    Status.BUSY.value,
    Status.SUSPECT.value,
)


def look(status: str) -> Look:
    return LOOKS[Status(status)]


def rank(status: str) -> int:
    return look(status).rank


def worst(statuses: list[str] | tuple[str, ...] | set[str], default: str = "skipped") -> str:
    """The most severe of `statuses` (`default` when there are none)."""
    return min(statuses, key=rank) if statuses else default
