"""`edgeq lab run`: every device of the inventory, in parallel, never stopped by one of them.

    resolve the models (the inventory's, `--models`, or trained per [model])
    stage the evaluation data and the host float32 references once
    per device, in parallel (`parallel` at a time):
        take its lease (flock, or a labgrid place)          busy if somebody else holds it
        health check (doctor for its runner), with retries   quarantined if it fails
        each model → deploy → budget → regression → history
        release the lease (also after errors and Ctrl-C)

Outcomes per device × model come from `edgeq.status`: pass, fail (budget or regression),
error (device/transport error after the retries), quarantined (failed the health check),
busy (held by somebody else for longer than lock_timeout_s). `LabRun.exit_code` is 0 when
every selected device ran (or was busy) and every result passed, else 1.

A lab of hundreds of devices must not fail devices with its own load. Connection set-ups
are paced per address (`targets.pacing`, `connect_per_host`), SSH handshakes also over
all addresses (`connect_total`), and health checks per address (`health_per_host`) and
over the whole lab (`health_total`), whatever `parallel` is. While more devices are
leased or running than CROWDED_PER_CORE per core of this host, the lab is *crowded*: a
connection error or a timed-out command gets `crowded_retries` more attempts
(`retry.RetryPolicy`), and a device that still fails that way is neither quarantined nor
recorded (nor tagged unhealthy on labgrid): it is set aside and run again, a few at a
time, after the others. Only a failure in that calm pass is the device's own.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import deploy as deploy_mod
from .. import fsutil, interrupts, paths
from .. import status as st
from ..changes import describe, what_changed
from ..compat import UnsupportedOp
from ..errors import CommandTimeout, EdgeqError, UsageError
from ..settings import RunSettings
from ..targets import pacing
from .artifacts import resolve_models, stage_models
from .backends import BackendUnavailable, DeviceBusy
from .health import check as health_check
from .history import History, HistoryLocked, provenance, utc_now
from .inventory import Device, Inventory
from .records import (
    Artifact,
    DeviceOutcome,
    Event,
    LabRun,
    OnEvent,
    ResultRecord,
    new_run_id,
    with_deploy,
)
from .regress import METRICS, Policy, annotate, band_failures, confirmed, evaluate
from .retry import Attempts, RetryPolicy

S = st.Status

#: More devices in flight than this per core of the lab host: the lab is crowded.
CROWDED_PER_CORE = 4
#: Seconds after which a health check no longer holds one of the lab-wide places
#: (`health_total`): a device that hangs or is off cannot keep the others waiting.
HEALTH_HOLD_S = 10.0


class Deferred(Exception):
    """A device failed while the lab crowded its host: set it aside, run it again later."""

    def __init__(self, outcome: DeviceOutcome, error: BaseException | None) -> None:
        super().__init__(outcome.name)
        self.outcome = outcome
        self.error = error


def series_key(rec: ResultRecord, policy: Policy) -> str:
    return rec.model if policy.series == "name" else (rec.artifact_sha256 or rec.model)


def _suspect(rec: ResultRecord) -> str:
    validity = ((rec.result or {}).get("run") or {}).get("validity") or {}
    if validity.get("verdict") in ("suspect", "invalid"):
        return "; ".join(validity.get("reasons") or []) or str(validity["verdict"])
    return ""


def to_confirm(history: History, rec: ResultRecord, policy: Policy) -> list[str]:
    """The band metrics a measured, valid result would regress on (judged without writing):
    what re-runs must bear out before it is a regression (`policy.confirm` of them)."""
    if policy.confirm <= 0 or rec.status not in (S.PASS, S.FAIL) or _suspect(rec):
        return []
    band = tuple(m for m in policy.metrics if m in METRICS and METRICS[m].kind == "band")
    if not band:
        return []
    only_band = replace(policy, metrics=band)  # tight metrics are never re-measured
    checks = evaluate(history, rec.device, series_key(rec, policy), rec.metrics, only_band)
    return band_failures(checks)


def with_confirmation(rec: ResultRecord, reruns: list[ResultRecord], names: list[str]) -> None:
    """Judge `rec` on the best of itself and its re-runs for `names` (`regress.confirmed`);
    a re-run that was suspect makes the result suspect (never a regression), one that gave
    no figure is noted."""
    measured = [r for r in reruns if r.status in (S.PASS, S.FAIL)]
    rec.metrics, block = confirmed(rec.metrics, [r.metrics for r in measured], names)
    lost = [r.reason for r in reruns if r.status not in (S.PASS, S.FAIL)]
    if lost:
        block["text"] += f"; {len(lost)} re-run(s) gave no figure: {lost[0]}"
    suspect = next((_suspect(r) for r in measured if _suspect(r)), "")
    run = (rec.result or {}).get("run")
    if suspect and isinstance(run, dict):
        validity = dict(run.get("validity") or {})
        validity["verdict"] = "suspect"
        validity["reasons"] = [*(validity.get("reasons") or []), f"a re-run: {suspect}"]
        run["validity"] = validity
    if rec.result is not None:
        rec.result["confirmation"] = block
    rec.checks.append(
        {"name": "confirmation", "kind": "confirmation", "passed": True, "message": block["text"]}
    )


def judge_and_record(history: History, rec: ResultRecord, policy: Policy) -> ResultRecord:
    """Add the regression checks (vs the history of the same device × model content) to a
    measured result, settle its status, find its streaks and recoveries, then write it in
    one transaction."""
    key = series_key(rec, policy)
    if rec.status in (S.PASS, S.FAIL):
        run = (rec.result or {}).get("run") or {}
        suspect = _suspect(rec)
        rec.checks += evaluate(
            history, rec.device, key, rec.metrics, policy, suspect, run.get("op_profile")
        )
        confirmation = (rec.result or {}).get("confirmation") or {}
        for c in rec.checks:
            values = (confirmation.get("metrics") or {}).get(c["name"].partition(":")[2])
            if c.get("kind") == "regression" and values and c.get("passed") is not None:
                c["message"] += (
                    f" (the best of {len(values['values'])} runs: "
                    f"{'confirmed' if c['passed'] is False else 'not borne out'} by re-runs)"
                )
        changed = {c["name"]: c.pop("operators") for c in rec.checks if c.get("operators")}
        if changed and rec.result is not None:
            rec.result["op_changes"] = changed  # kept with the result for the reports
        failing = [c for c in rec.checks if c.get("passed") is False]
        rec.status = S.FAIL if failing else S.SUSPECT if suspect else S.PASS
        rec.reason = "; ".join(c["message"] for c in failing) or (
            f"suspect: {suspect}" if suspect else ""
        )
    rec.findings, rec.since_utc, rec.last_pass_run_id = annotate(
        history,
        rec.device,
        key,
        rec.run_id,
        rec.started_utc,
        rec.status,
        rec.checks,
        label=rec.model,
        by=policy.series,
    )
    if any(f.kind in ("regression", "failure") for f in rec.findings):
        rec.findings = with_what_changed(history, rec, key, policy.series)
    rec.finished_utc = rec.finished_utc or utc_now()
    rec.result_id = history.record(rec.to_row())
    return rec


def with_what_changed(history: History, rec: ResultRecord, key: str, by: str = "content") -> list:
    """The findings of `rec`, each regression or failure told what differs between the
    series's last passing run and this one (model, runtime, runner, edgeq, device, settings)."""
    last = history.last_pass(rec.device, key, by)
    if last is None or not isinstance(last.get("result"), dict) or not rec.result:
        return rec.findings
    before = dict(last["result"])
    before.setdefault("edgeq_version", last.get("edgeq_version"))
    changed = tuple(what_changed(before, rec.result))
    text = describe(list(changed))
    out = []
    for f in rec.findings:
        if f.kind in ("regression", "failure"):
            f = replace(f, message=f"{f.message}; changed since {last['run_id']}: {text}",
                        changed=changed)  # fmt: skip
        out.append(f)
    return out


class Lab:
    """State shared by the workers of one run (history writes are serialized by History)."""

    def __init__(
        self,
        inv: Inventory,
        history: History,
        run_id: str,
        artifacts: list[Artifact],
        data_path: Path | None,
        on_event: OnEvent | None,
    ) -> None:
        self.inv = inv
        self.backend = inv.backend
        self.history = history
        self.run_id = run_id
        self.artifacts = artifacts
        self.data_path = data_path
        self._on_event = on_event
        self._event_lock = threading.Lock()
        #: set to stop (Ctrl-C): wakes the pacers' waiters at once
        self.stop = interrupts.WakingEvent()
        #: results the history could not take (it stayed locked), kept to be saved aside
        self.unrecorded: list[ResultRecord] = []
        #: results written to the history so far (kept if the run stops early)
        self.recorded = 0
        self.history_error: HistoryLocked | None = None
        #: devices leased, in set-up or running now (see crowded())
        self.active = 0
        self.cores = os.cpu_count() or 1
        #: the calm pass (devices set aside run again, few at a time): nothing is lab-made
        self.calm = False
        self.health_pacer = pacing.Pacer(int(inv.lab["health_per_host"]), "health checks")
        #: over all addresses: 256 checks at once kept the lab's threads queueing for the
        #: GIL (futex calls per device-run 5x those of 8 devices); a check that takes
        #: longer than HEALTH_HOLD_S (a device powered off) stops holding its place
        self.health_all = pacing.Pacer(
            int(inv.lab["health_total"]), "health checks, all addresses", HEALTH_HOLD_S
        )

    def crowded(self) -> bool:
        """Whether the lab crowds its hosts now (its own failures are then possible)."""
        return not self.calm and self.active > CROWDED_PER_CORE * self.cores

    def event(self, device: str, phase: str, message: str = "", **kw: Any) -> None:
        if self._on_event:
            with self._event_lock:
                self._on_event(Event(device, phase, message, **kw))

    def models_for(self, dev: Device) -> list[Artifact]:
        return [a for a in self.artifacts if not dev.modes or a.mode in dev.modes]

    def settings_for(self, dev: Device, timeout: float | None = None) -> RunSettings:
        values = {**self.inv.run_for(dev), "limit": self.inv.lab["eval_limit"] or None}
        if timeout is not None:
            values["timeout"] = timeout
        return RunSettings.from_dict(values).validate()

    def policy(self, dev: Device, deadline: float | None = None) -> RetryPolicy:
        return RetryPolicy(
            dev.retries,
            float(self.inv.lab["backoff_s"]),
            deadline,
            self.stop,
            crowded=self.crowded,
            crowded_retries=int(self.inv.lab["crowded_retries"]),
        )

    def base_record(self, dev: Device, art: Artifact, status: str) -> ResultRecord:
        return ResultRecord(
            run_id=self.run_id,
            device=dev.name,
            transport=dev.transport,
            address=dev.address,
            identity=dev.identity,
            model=art.name,
            status=str(status),
            tags=list(dev.tags),
            features=list(dev.features),
            artifact_path=str(art.path),
            artifact_sha256=art.sha256,
            mode=art.mode,
            started_utc=utc_now(),
        )

    def write(self, rec: ResultRecord) -> ResultRecord:
        """Judge and record a result; if the history stays locked, keep it aside (it is
        saved beside the history at the end of the run, and the run fails)."""
        dev = self.inv.devices[rec.device]
        policy = Policy.from_dict(self.inv.regression_for(dev))
        try:
            rec = judge_and_record(self.history, rec, policy)
            with self._event_lock:
                self.recorded += 1
            return rec
        except HistoryLocked as exc:
            rec.finished_utc = rec.finished_utc or utc_now()
            with self._event_lock:
                self.unrecorded.append(rec)
                self.history_error = exc
            return rec

    def save_unrecorded(self) -> str | None:
        """Write the results the history could not take to a JSON file beside it (else the
        edgeq cache); returns the notice to show, None if there were none."""
        if not self.unrecorded:
            return None
        doc = {
            "schema": "edgeq.lab-unrecorded/1",
            "run_id": self.run_id,
            "db": str(self.history.path),
            "error": self.history_error.message if self.history_error else None,
            "results": [r.to_row() for r in self.unrecorded],
        }
        name = f"unrecorded-{self.run_id}.json"
        path = fsutil.write_first(
            (self.history.path.parent, paths.cache_root() / "lab"),
            lambda folder: fsutil.write_json(folder / name, doc),
        )
        where = f"saved to {path}" if path else "and could not be saved anywhere"
        return (
            f"{len(self.unrecorded)} result(s) could not be written to the history "
            f"{self.history.path} (it stayed locked by another process); {where}"
        )

    def unmeasured(
        self,
        dev: Device,
        outcome: DeviceOutcome,
        status: str,
        kind: str,
        error: BaseException | None,
    ) -> DeviceOutcome:
        """Record every model of the device as not measured (quarantined, busy, error)."""
        env = (outcome.health or {}).get("environment")
        done = {r.model for r in outcome.results}  # recorded before it was set aside
        for art in [a for a in self.models_for(dev) if a.name not in done]:
            rec = self.base_record(dev, art, status)
            rec.reason = outcome.reason
            rec.environment = env
            rec.error = error
            rec.checks = [{"name": kind, "kind": kind, "passed": False, "message": outcome.reason}]
            outcome.results.append(self.write(rec))
        outcome.status = str(status)
        self.event(dev.name, "done", outcome.reason, status=str(status))
        return outcome

    # ------------------------------------------------------------------ one device

    def device_job(self, dev: Device, prior: DeviceOutcome | None = None) -> DeviceOutcome:
        """Lease → health check → each model; the lease is released whatever happens.

        Returns a Deferred (not raised: `pool.map` goes on) for a device the lab's own load
        failed; `prior` is that outcome when it runs again (its recorded models are kept)."""
        with self._event_lock:
            self.active += 1
        try:
            return self._device_job(dev, prior)
        except Deferred as later:
            return later  # type: ignore[return-value]
        finally:
            with self._event_lock:
                self.active -= 1

    def _device_job(self, dev: Device, prior: DeviceOutcome | None) -> DeviceOutcome:
        outcome = prior or DeviceOutcome(dev.name, dev.transport, dev.address, dev.identity, S.PASS)
        done = {r.model for r in outcome.results}
        arts = [a for a in self.models_for(dev) if a.name not in done]
        if prior is not None and not arts:
            return self.conclude(outcome)
        if not arts:
            outcome.status = S.SKIPPED
            outcome.reason = f"no model of mode {', '.join(dev.modes)} in this run"
            self.event(dev.name, "done", outcome.reason, status=S.SKIPPED)
            return outcome
        why = self.backend.skip_reason(dev)
        if why:
            outcome.reason = why
            return self.unmeasured(dev, outcome, S.QUARANTINED, "health", None)
        lease = self.backend.lease(
            dev,
            {"run_id": self.run_id, "device": dev.name},
            float(self.inv.lab["lock_timeout_s"]),
        )
        try:
            lease.acquire(lambda m: self.event(dev.name, "waiting", m, total=len(arts)))
        except DeviceBusy as exc:
            outcome.reason, outcome.error = exc.message, exc
            return self.unmeasured(dev, outcome, S.BUSY, "lock", exc)
        except BackendUnavailable:
            raise  # no device's fault: the run stops (exit 3)
        except EdgeqError as exc:
            outcome.reason, outcome.error = exc.message, exc
            return self.unmeasured(dev, outcome, S.ERROR, "lock", exc)
        try:
            outcome.lock_wait_s = lease.waited_s
            return self._measure_device(dev, outcome, arts)
        finally:
            lease.release()

    def _measure_device(
        self, dev: Device, outcome: DeviceOutcome, arts: list[Artifact]
    ) -> DeviceOutcome:
        self.event(dev.name, "health", "checking", total=len(arts))
        policy = self.policy(dev)
        key = dev.pace_key
        with (
            self.health_pacer.slot(key, self.stop),
            self.health_all.slot(None if key is None else pacing.ALL, self.stop),
        ):
            checked = health_check(
                dev,
                self.settings_for(dev),
                policy,
                on_retry=lambda e, n, w: self.event(
                    dev.name, "retry", f"{type(e).__name__}; retry {n} in {w:g} s"
                ),
            )
        outcome.health, outcome.health_s = checked.health, checked.health_s
        outcome.health_attempts = checked.health_attempts
        if checked.status != S.PASS and policy.lab_made(checked.error):
            self.defer(outcome, checked.reason, checked.error)
        self.backend.mark_health(dev, checked.status == S.PASS, checked.reason)
        if checked.status != S.PASS:
            outcome.reason, outcome.error = checked.reason, checked.error
            self.event(dev.name, "quarantined", checked.reason, status=S.QUARANTINED)
            return self.unmeasured(dev, outcome, S.QUARANTINED, "health", checked.error)
        deadline = time.monotonic() + dev.timeout_s
        for i, art in enumerate(arts):
            if self.stop.is_set():
                break
            self.event(dev.name, "running", art.name, done=i, total=len(arts))
            rec = self.run_one(dev, art, deadline, outcome)
            if rec.status == S.ERROR and self.policy(dev).lab_made(rec.error):
                self.defer(outcome, rec.reason, rec.error)
            self.confirm(dev, art, deadline, outcome, rec)
            rec.metrics["lock_wait_s"] = outcome.lock_wait_s if i == 0 else 0.0
            outcome.results.append(self.write(rec))
            self.event(
                dev.name, "running", f"{art.name}: {rec.status}", done=i + 1, total=len(arts)
            )
        return self.conclude(outcome)

    def confirm(
        self, dev: Device, art: Artifact, deadline: float, outcome: DeviceOutcome, rec: ResultRecord
    ) -> None:
        """A result that would regress on a latency or memory figure is measured again
        (`[regression] confirm` fresh runs) and judged on the best (`with_confirmation`)."""
        policy = Policy.from_dict(self.inv.regression_for(dev))
        try:
            names = to_confirm(self.history, rec, policy)
        except HistoryLocked:
            return  # judged on the one run; the write reports the locked history
        if not names:
            return
        reruns = []
        for i in range(policy.confirm):
            if self.stop.is_set():
                break
            self.event(
                dev.name,
                "running",
                f"{art.name}: {', '.join(names)} beyond the band: re-run {i + 1} of "
                f"{policy.confirm} to confirm",
            )
            reruns.append(self.run_one(dev, art, deadline, outcome))
        with_confirmation(rec, reruns, names)
        if reruns:
            rec.bench_end = reruns[-1].bench_end

    def defer(self, outcome: DeviceOutcome, reason: str, error: BaseException | None) -> None:
        """Set the device aside (nothing recorded, no health tag): raises Deferred."""
        outcome.deferred += 1
        self.event(
            outcome.name,
            "retry",
            f"set aside until the others are done (failed while the lab crowded its host: "
            f"{reason})",
        )
        raise Deferred(outcome, error)

    def conclude(self, outcome: DeviceOutcome) -> DeviceOutcome:
        statuses = {r.status for r in outcome.results}
        outcome.status = st.worst(
            statuses & {S.ERROR, S.FAIL, S.SUSPECT, S.PASS}, default=S.SKIPPED
        )
        bad = [r for r in outcome.results if not r.passed]
        outcome.reason = "; ".join(f"{r.model}: {r.reason}" for r in bad)
        self.event(outcome.name, "done", outcome.reason, status=outcome.status)
        return outcome

    def run_one(
        self, dev: Device, art: Artifact, deadline: float, outcome: DeviceOutcome
    ) -> ResultRecord:
        """Deploy one model (with retries on transient errors) and judge it."""
        started = utc_now()
        bench_start = time.time()
        attempts = Attempts()

        def attempt() -> deploy_mod.DeployResult:
            remaining = deadline - time.monotonic()
            if remaining < 1:
                raise CommandTimeout(
                    f"{dev.name}: the per-device time budget (timeout_s = {dev.timeout_s:g} s) "
                    f"ran out before {art.name}; raise timeout_s for [devices.{dev.name}] or "
                    f"lighten [run]"
                )
            return deploy_mod.deploy(
                dev.resolved_target(),
                art.path,
                art.dataset,
                self.data_path,
                self.inv.budget_for(dev),
                self.settings_for(dev, timeout=remaining),
                keep=False,
                results_dir=None,
                progress=lambda m: self.event(dev.name, "running", f"{art.name}: {m}"),
                with_data=bool(self.inv.lab["accuracy"]),
                probe=False,  # the health check just did
                staged=art.staged,  # data plan and host reference, staged before the fan-out
            )

        res = None
        try:
            res = self.policy(dev, deadline).call(
                attempt,
                on_retry=lambda e, n, w: self.event(
                    dev.name, "retry", f"{art.name}: {type(e).__name__}; retry {n} in {w:g} s"
                ),
                attempts=attempts,
            )
        except Exception:  # recorded below: one device never stops the lab
            pass
        bench_end = time.time()
        if res is None:
            rec = self.base_record(dev, art, S.ERROR)
            rec.error = attempts.errors[-1]
            rec.earlier_errors = attempts.errors[:-1]
            rec.attempts = attempts.count
            msg = rec.error.message if isinstance(rec.error, EdgeqError) else str(rec.error)
            if not isinstance(rec.error, EdgeqError):
                msg = f"internal error: {type(rec.error).__name__}: {rec.error}"
            if attempts.count > 1:
                msg += f" (after {attempts.count} attempts)"
            rec.reason = msg
            rec.checks = [{"name": "run", "kind": "run", "passed": False, "message": msg}]
            if isinstance(rec.error, UnsupportedOp):
                # the model's fault, found before it was sent: the device stays in service
                rec.reason = f"model error: {msg}"
                rec.checks = [{"name": "compat", "kind": "model", "passed": False, "message": msg}]
        else:
            n = attempts.count + 1
            checks = [
                {
                    "name": "health",
                    "kind": "health",
                    "passed": True,
                    "message": f"doctor ok ({outcome.health_s:.1f} s)",
                },
                {
                    "name": "run",
                    "kind": "run",
                    "passed": True,
                    "message": f"ran ({n} attempt{'s' if n > 1 else ''})",
                },
            ]
            rec = with_deploy(self.base_record(dev, art, S.PASS), res, n, checks)
        rec.started_utc = started
        rec.bench_start, rec.bench_end = bench_start, bench_end
        return rec


def run_lab(
    inv: Inventory,
    models: list[Path] | None = None,
    data_path: Path | None = None,
    only: str | None = None,
    parallel: int | None = None,
    db: Path | None = None,
    on_event: OnEvent | None = None,
    say: Callable[[str], None] | None = None,
    command: str = "",
    labels: list[str] | None = None,
) -> LabRun:
    """Run the lab once. Never raises for a device's failure (it is recorded); raises
    EdgeqError only for bad input (exit 2) or an unreachable inventory source (exit 3)."""
    t0 = time.monotonic()
    devices = inv.select(only)
    if not devices:
        known = sorted({x for d in inv.devices.values() for x in (d.name, *d.tags, *d.features)})
        raise UsageError(
            f"--only {only!r} selects no enabled device in {inv.source}; names, tags and "
            f"features there: {', '.join(known) or '(none)'}"
        )
    workers = parallel or inv.lab["parallel"]
    if workers < 1:
        raise UsageError("--parallel must be >= 1")
    # an unusable lock folder is the run's fault (exit 2 before any work), not each device's
    from ..privdir import ensure_local

    ensure_local(
        getattr(inv.backend, "lock_dir", None) or inv.lock_dir,
        "the device-lock folder",
        "set lock_dir in [lab] to a folder of yours",
    )
    data_path = data_path or inv.data_path
    artifacts = stage_models(
        inv, resolve_models(inv, models, data_path, say, labels), data_path, say
    )
    history = History(db or inv.db_path, timeout_s=float(inv.lab["history_timeout_s"]))
    run_id = new_run_id()
    started = utc_now()
    settings = {
        "only": only,
        "parallel": workers,
        "models": [a.name for a in artifacts],
        "devices": [d.name for d in devices],
        "run": inv.run,
        "budget": inv.budget,
        "regression": inv.regression,
        # the policy each device was judged by (per-device overrides included)
        "regression_by_device": {d.name: inv.regression_for(d) for d in devices},
        "python": sys.version.split()[0],
        "pid": os.getpid(),
        "backend": inv.backend.scheme if inv.backend else "file",
    }
    history.start_run(run_id, started, inv.source, inv.sha256, command, settings, provenance())
    lab = Lab(inv, history, run_id, artifacts, data_path, on_event)
    pacing.CONNECTIONS.limit = int(inv.lab["connect_per_host"])
    pacing.SETUPS.limit = int(inv.lab["connect_total"])
    for d in devices:
        lab.event(d.name, "queued", "", total=len(lab.models_for(d)))
    status = "interrupted"
    try:
        pool = ThreadPoolExecutor(max_workers=min(workers, len(devices)))
        try:
            outcomes = list(pool.map(lab.device_job, devices))
            later = [i for i, o in enumerate(outcomes) if isinstance(o, Deferred)]
            if later:
                # the calm pass: a few at a time; a failure now is the device's own
                lab.calm = True
                pool.shutdown()
                pool = ThreadPoolExecutor(max_workers=min(lab.cores, len(later)))
                again = pool.map(lambda i: lab.device_job(devices[i], outcomes[i].outcome), later)
                for i, o in zip(later, again, strict=True):
                    outcomes[i] = o
        except BaseException as exc:
            # Ctrl-C (or the inventory's source lost): no new device starts; running ones
            # stop at their next step, and every lease is released by its own `finally`.
            lab.stop.set()
            if inv.backend:
                inv.backend.interrupt()
            pool.shutdown(wait=True, cancel_futures=True)
            if isinstance(exc, BackendUnavailable):
                raise BackendUnavailable(
                    f"{exc.message}; the run stopped: the {lab.recorded} result(s) measured "
                    f"before are kept in the history {history.path} (run {run_id}, recorded "
                    f"as interrupted)"
                ) from None
            raise
        pool.shutdown()
        results = [r for o in outcomes for r in o.results]
        notices = inv.backend.notices() if inv.backend else []
        lost = lab.save_unrecorded()
        if lost:
            notices.append(lost)
        run = LabRun(
            run_id,
            started,
            utc_now(),
            inv.source,
            str(history.path),
            artifacts,
            outcomes,
            results,
            time.monotonic() - t0,
            notices=notices,
            unrecorded=len(lab.unrecorded),
        )
        status = "pass" if run.ok else "fail"
        try:
            history.finish_run(run_id, status, run.exit_code)
        except HistoryLocked as exc:
            run.notices.append(f"the run's end was not recorded: {exc.message}")
        return run
    finally:
        if status == "interrupted":
            try:
                history.finish_run(run_id, "interrupted", None)
            except Exception:
                pass
        history.close()
        if inv.backend:
            inv.backend.close()


__all__ = ["Lab", "judge_and_record", "run_lab"]
