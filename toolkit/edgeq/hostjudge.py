"""What the host judges after a device measured — the step after `measure.repeat_runs`.

Runners only measure on the device; what only the host can judge they leave in the
`Measurement`:

    judge_agreement(got, job)   the device's outputs (pulled to the host) vs the host
                                reference on the same seeded inputs → `run["agreement"]`
    accuracy_on_host(got, job)  top-1 of the same artifact on this host's interpreter, for
                                a device that could not compute it (`accuracy_source: host`)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .agreement import Reference, agreement, host_accuracy, reference_for
from .devapi import model_io
from .errors import EdgeqError
from .progress import Progress, say
from .runners import Job, Measurement

__all__ = ["accuracy_on_host", "after_measuring", "judge_agreement"]


def after_measuring(got: Measurement, job: Job, progress: Progress | None = None) -> None:
    """Everything the host judges about `got` (in place)."""
    accuracy_on_host(got, job, progress)
    judge_agreement(got, job, progress)


def judge_agreement(got: Measurement, job: Job, progress: Progress | None = None) -> None:
    """Compare the outputs the device saved in agreement mode with the host reference on
    the same seeded inputs; the report (or the error) goes into `run["agreement"]`."""

    if not job.agreement or "agreement" not in got.run:
        return  # not asked for, or a runner that returns no outputs (deploy notes it)
    say(progress, f"comparing {job.agreement} outputs with the host reference")
    section = got.run.get("agreement")
    if not isinstance(section, dict) or not section.get("samples"):
        return
    ref = reference_for(job.artifact)
    if job.reference is not None:
        ref = Reference(Path(job.reference), "given")
    if got.outputs is None:
        section["report"] = None
        section["error"] = got.outputs_error or "the device's outputs were not pulled"
        return
    try:
        section["report"] = agreement(
            job.artifact, got.run, got.outputs, ref, data_npz=job.eval_npz
        ).to_dict()
    except (EdgeqError, OSError) as exc:
        section["report"] = None
        section["error"] = getattr(exc, "message", str(exc))


def accuracy_on_host(got: Measurement, job: Job, progress: Progress | None = None) -> None:
    """Top-1 of the same artifact (same sha256) on this host, when the runner could not
    measure it on the device (`got.host_accuracy` says why)."""

    reason = got.host_accuracy
    if reason is None or job.eval_npz is None:
        return
    # as on the device: a non-classifier or unlabelled data has no accuracy, only agreement
    note = model_io(job.artifact).accuracy_note
    if note is None:
        with np.load(job.eval_npz) as arrays:
            if "y" not in arrays.files:
                note = "not measured: the data has no labels y (outputs are compared)"
    if note is not None:
        got.run["accuracy"] = None
        got.run["accuracy_note"] = note
        return
    say(progress, f"evaluating accuracy of the same artifact on this host ({reason})")
    s = job.settings
    acc = host_accuracy(job.artifact, job.eval_npz, s.limit, s.batch_size)
    acc["note"] = (
        f"benchmark_model measures latency only; accuracy of the same artifact evaluated on "
        f"the host with {acc['runtime']} — {reason}"
    )
    got.run["accuracy"] = acc
    got.run["accuracy_source"] = acc.get("source")
