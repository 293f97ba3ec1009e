"""`lab.toml`: which devices the lab has, how to reach them, what to run and how to judge it.

    [lab]                  defaults: models/modes, data, parallelism, history DB, timeouts
    [run]                  device-runner settings (the `edgeq deploy` flags)
    [budget]               the budget (keys of edgeq.toml's [budget])
    [regression]           the noise band: K passing runs, k·MAD, tight accuracy/size
    [model]                the recipe used when the lab trains its own model
    [devices.NAME]         the keys of edgeq.toml's [targets.NAME] (transport local/ssh/adb)
                           plus lab-only keys: features, enabled, modes, timeout_s, retries,
                           password_env, lock_key, and override tables
                           [devices.NAME.budget], [devices.NAME.run], [devices.NAME.regression]

Everything is validated on load; an error names the file, the section (the device) and the
key. Secrets never live in the inventory: `key_file` points at a key, `password_env` names
an environment variable holding a password (a plain `password` is refused).

Where the devices come from is the inventory's backend (`edgeq.lab.backends`): the
`[devices.NAME]` tables of this file (`file`), or the places of a labgrid coordinator
(`[lab] inventory = "labgrid://HOST:PORT?TAG=VALUE"`, defaults in `[labgrid]`, and
`[devices.PLACE]` then adds or overrides keys of the place named PLACE).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import convert
from .. import settings as settings_mod
from ..budget import BUDGET_FIELDS, Budget
from ..config import target_fields, validate_target
from ..data import DATASETS
from ..devicelock import lock_dir_of
from ..errors import ConfigError, UsageError
from ..fields import Field, read_toml, validate_partial, validate_section
from ..models.recipe import MODEL_FIELDS
from ..runners import option_specs
from ..targets import TRANSPORTS
from ..targets.local import LocalTarget
from .backends import BACKENDS, Backend, backend_class, scheme_of
from .device import Device

INVENTORY_NAME = "lab.toml"

NUM = (int, float)

LAB_FIELDS: dict[str, Field] = {
    "inventory": Field(
        (str,),
        "",
        "where the devices come from: '' = the [devices.NAME] tables of this file, or "
        "labgrid://HOST:PORT?TAG=VALUE (a labgrid coordinator's places)",
    ),
    "models": Field(
        (list,), [], "artifacts (.tflite) to run, relative to this file; [] = train per [model]"
    ),
    "modes": Field((list,), ["int8"], "conversion modes run when the lab trains per [model]"),
    "dataset": Field((str,), "mnist", "evaluation dataset", False, DATASETS),
    "data": Field((str,), "", "dataset .npz or folder ('' = $EDGEQ_DATA_DIR, then download)"),
    "accuracy": Field((bool,), True, "measure accuracy on the device (false: latency only)"),
    "eval_limit": Field((int,), 1000, "evaluate on this many test images (0 = all)"),
    "parallel": Field((int,), 4, "devices benchmarked at the same time"),
    "db": Field((str,), "lab-data/history.sqlite", "the SQLite history, relative to this file"),
    "lock_dir": Field(
        (str,),
        "",
        "folder of the per-device lock files ('' = $EDGEQ_LOCK_DIR, else "
        "$TMPDIR/edgeq-locks-<uid>, shared with `edgeq deploy`)",
    ),
    "lock_timeout_s": Field(NUM, 3600, "give up waiting for a busy device after this long"),
    "history_timeout_s": Field(
        NUM, 60, "wait this long for a history another process keeps locked", minimum=0
    ),
    "timeout_s": Field(NUM, 900, "per-device budget for all its benchmarks, in seconds"),
    "retries": Field((int,), 2, "extra attempts after a transient transport error"),
    "backoff_s": Field(NUM, 5, "first retry delay; doubles on each further retry"),
    "connect_per_host": Field(
        (int,),
        8,
        "connection set-ups in flight per address (an sshd, an adb server), whatever "
        "`parallel` is; below OpenSSH's MaxStartups (10)",
        minimum=1,
    ),
    "connect_total": Field(
        (int,),
        8,
        "SSH handshakes in flight over all addresses together (a handshake is CPU work "
        "for this host: more at once finish none sooner); raise it for devices many "
        "milliseconds away",
        minimum=1,
    ),
    "health_per_host": Field(
        (int,), 4, "health checks in flight per address (devices behind one host)", minimum=1
    ),
    "health_total": Field(
        (int,),
        16,
        "health checks in flight over the whole lab (each one's place is freed after "
        "10 s even if it goes on); raise it for many devices with slow checks",
        minimum=1,
    ),
    "crowded_retries": Field(
        (int,),
        2,
        "extra attempts for a connection error or a timed-out health check while the lab "
        "itself crowds the host (more than 4 devices in flight per core of this host)",
        minimum=0,
    ),
}

#: The runner settings: the same keys, defaults and bounds as `edgeq deploy`'s options (the
#: shared settings and each runner's own, see `runners.option_specs`).
RUN_FIELDS: dict[str, Field] = {s.name: s.field for s in option_specs() if s.lab}

#: Metrics the regression check can watch (see regress.METRICS for direction and kind).
REGRESSION_METRICS = (
    "latency_p50",
    "latency_p90",
    "latency_p99",
    "latency_mean",
    "latency_steady_p50",
    "latency_steady_p90",
    "e2e_latency_p50",
    "e2e_latency_p90",
    "peak_rss_kb",
    "model_footprint_kb",
    "accuracy",
    "model_bytes",
)

REGRESSION_FIELDS: dict[str, Field] = {
    "window": Field((int,), 10, "K: compare with the last K passing runs of device × model"),
    "k": Field(NUM, 3.0, "noise band half-width in scaled MADs (median ± k·1.4826·MAD)"),
    "min_history": Field((int,), 3, "passing runs needed before a metric is judged"),
    "min_rel": Field(NUM, 0.07, "smallest band, relative to the median (0.07 = ±7 %)"),
    "accuracy_tolerance_pp": Field(NUM, 0.1, "accuracy drop vs the median allowed, in pp"),
    "size_tolerance_bytes": Field((int,), 0, "model growth vs the median allowed, in bytes"),
    "level": Field(NUM, 0.95, "confidence a latency regression needs vs the run-to-run spread"),
    "confirm": Field(
        (int,),
        2,
        "fresh re-runs that must bear out a latency/memory regression before it is one: the "
        "result is judged on the best of the first run and these (0: the first run alone)",
    ),
    "steady": Field(
        (bool,),
        True,
        "judge latency_p50/p90 on each run's steadiest stretch (runner >= 1.5) once the "
        "history has enough of them, not on the whole run, whose figure moves with the "
        "host's speed; false: the whole run",
    ),
    "series": Field(
        (str,),
        "content",
        'a series is one model content ("content", its sha256) or one model name ("name": '
        "a model retrained under the same name or --label is judged against its past)",
        choices=("content", "name"),
    ),
    "metrics": Field(
        (list,),
        ["latency_p50", "latency_p90", "model_footprint_kb", "accuracy", "model_bytes"],
        "metrics watched for regressions",
    ),
}

DEVICE_FIELDS: dict[str, Field] = {
    "features": Field((list,), [], "capabilities (recorded; `--only` matches them too)"),
    "enabled": Field((bool,), True, "false: keep the entry but never run it"),
    "modes": Field((list,), [], "run only artifacts of these conversion modes ([] = all)"),
    "timeout_s": Field(NUM, None, "per-device budget in seconds (default: [lab] timeout_s)"),
    "retries": Field((int,), None, "transient-error retries (default: [lab] retries)"),
    "password_env": Field((str,), "", "environment variable holding the SSH password"),
    "lock_key": Field((str,), "", "device identity for the lock (default: from the address)"),
    "budget": Field((dict,), {}, "budget keys overriding [budget] for this device"),
    "run": Field((dict,), {}, "[run] keys overriding the runner settings for this device"),
    "regression": Field((dict,), {}, "[regression] keys overriding the policy for this device"),
}

SECTIONS = ("lab", "run", "budget", "regression", "model", "devices")


def _backend_tables() -> dict[str, type[Backend]]:

    return {cls.table: cls for cls in BACKENDS.values() if cls.table}


@dataclass(frozen=True)
class Inventory:
    """A validated `lab.toml` (paths resolved relative to its folder)."""

    path: Path
    lab: dict[str, Any]
    run: dict[str, Any]
    budget: dict[str, Any]
    regression: dict[str, Any]
    model: dict[str, Any]
    devices: dict[str, Device]
    sha256: str = ""
    backend: Backend | None = field(default=None, compare=False)
    base: Path | None = None

    @property
    def folder(self) -> Path:
        return self.base or self.path.parent

    @property
    def source(self) -> str:
        """Where the devices come from, for messages and the history (file or URL)."""
        return self.backend.url if self.backend else str(self.path)

    def resolve(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.folder / p

    @property
    def db_path(self) -> Path:
        return self.resolve(self.lab["db"])

    @property
    def lock_dir(self) -> Path:
        return lock_dir_of(self.lab["lock_dir"], self.folder)

    @property
    def model_paths(self) -> list[Path]:
        return [self.resolve(m) for m in self.lab["models"]]

    @property
    def data_path(self) -> Path | None:
        return self.resolve(self.lab["data"]) if self.lab["data"] else None

    def budget_for(self, device: Device) -> Budget:
        return Budget.from_dict({**self.budget, **device.budget})

    def run_for(self, device: Device) -> dict[str, Any]:
        return {**self.run, **device.run}

    def regression_for(self, device: Device) -> dict[str, Any]:
        return {**self.regression, **device.regression}

    def select(self, only: str | None = None) -> list[Device]:
        """Enabled devices matching `--only` (name, tag or feature), in inventory order."""
        return [d for d in self.devices.values() if d.enabled and d.matches(only)]


_partial = validate_partial


def _strings(where: str, key: str, value: list[Any], choices: tuple[str, ...] | None = None):
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(f"{where}: key {key!r} must be a list of strings, got {item!r}")
        if choices and item not in choices:
            raise ConfigError(f"{where}: key {key!r}: {item!r} is not one of {', '.join(choices)}")
    return tuple(value)


def _run_keys(where: str, run: Any) -> Any:
    """A [run] table with the settings' alias keys (`op_profile`) under their names."""
    if not isinstance(run, dict):
        return run  # the validator says what is wrong with it
    try:
        return settings_mod.resolve_aliases(where, run)
    except UsageError as exc:
        raise ConfigError(exc.message) from None


def _check_run(where: str, run: dict[str, Any]) -> dict[str, Any]:
    """A [run] table's values through the settings' own validator (the message names the
    table as well as the key)."""

    try:
        settings_mod.RunSettings.from_dict(run).validate()
    except UsageError as exc:
        raise ConfigError(f"{where}: {exc.message.lstrip('-')}") from None
    return run


def _check_regression(where: str, regression: dict[str, Any]) -> None:
    if "metrics" in regression:
        _strings(where, "metrics", regression["metrics"], REGRESSION_METRICS)
    for key in ("window", "min_history"):
        if key in regression and regression[key] < 1:
            raise ConfigError(f"{where}: key {key!r} must be >= 1")
    if "confirm" in regression and not 0 <= regression["confirm"] <= 10:
        raise ConfigError(f"{where}: key 'confirm' must be in [0, 10] (re-runs), e.g. 2")
    if "level" in regression and not 0.5 <= regression["level"] < 1:
        raise ConfigError(f"{where}: key 'level' must be in [0.5, 1), e.g. 0.95")


def _device(name: str, raw: Any, src: str, lab: dict[str, Any]) -> Device:
    # The device is named in words too: the CLI's error line renders rich markup, in which
    # a bare [devices.NAME] would vanish.
    where = f"{src}, device {name!r} [devices.{name}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table of keys")
    transport = raw.get("transport")
    if transport not in TRANSPORTS:
        raise ConfigError(
            f"{where}: key 'transport' must be one of {', '.join(TRANSPORTS)}, got {transport!r}"
        )
    if "password" in raw:
        raise ConfigError(
            f"{where}: key 'password': do not put passwords in an inventory; export it in an "
            f'environment variable and set password_env = "VARIABLE"'
        )
    allowed = {**target_fields(transport), **DEVICE_FIELDS}
    allowed.pop("password", None)
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(allowed))}"
        )
    lab_raw = {k: v for k, v in raw.items() if k in DEVICE_FIELDS}
    target_raw = {k: v for k, v in raw.items() if k not in DEVICE_FIELDS}
    target = validate_target(name, target_raw, src, section=f"devices.{name}", where=where)
    if transport == "local":
        LocalTarget.this_interpreter(target.values)
    extra = validate_section(where, lab_raw, DEVICE_FIELDS)
    if extra["password_env"] and transport != "ssh":
        raise ConfigError(f"{where}: key 'password_env' only applies to transport = \"ssh\"")
    _strings(where, "tags", target.values["tags"])
    sub = f"{src}, device {name!r} [devices.{name}"
    budget = _partial(f"{sub}.budget]", extra["budget"], BUDGET_FIELDS)
    run = _check_run(
        f"{sub}.run]", _partial(f"{sub}.run]", _run_keys(f"{sub}.run]", extra["run"]), RUN_FIELDS)
    )
    regression = _partial(f"{sub}.regression]", extra["regression"], REGRESSION_FIELDS)
    _check_regression(f"{sub}.regression]", regression)
    timeout = extra["timeout_s"] if extra["timeout_s"] is not None else lab["timeout_s"]
    retries = extra["retries"] if extra["retries"] is not None else lab["retries"]
    if timeout <= 0:
        raise ConfigError(f"{where}: key 'timeout_s' must be > 0")
    if retries < 0:
        raise ConfigError(f"{where}: key 'retries' must be >= 0")
    return Device(
        name=name,
        target=target,
        tags=tuple(target.values["tags"]),
        features=_strings(where, "features", extra["features"]),
        enabled=extra["enabled"],
        modes=_strings(where, "modes", extra["modes"], convert.MODES),
        timeout_s=float(timeout),
        retries=int(retries),
        password_env=extra["password_env"],
        lock_key=extra["lock_key"],
        budget=budget,
        run=run,
        regression=regression,
    )


def parse_inventory(
    raw: dict[str, Any], path: Path, spec: str | None = None, discover: bool = True
) -> Inventory:
    """Validate a parsed `lab.toml` (see the module docstring for the layout).

    `spec`: the inventory URL when it was given instead of a file (`--inventory
    labgrid://…`). `discover=False` skips asking the backend for its devices (reports need
    only the history's path)."""
    src = spec if spec and not raw else str(path)
    tables = _backend_tables()
    unknown = sorted(set(raw) - set(SECTIONS) - set(tables))
    if unknown:
        allowed = ", ".join([*SECTIONS, *tables])
        raise ConfigError(f"{src}: unknown section [{unknown[0]}]; allowed: {allowed}")
    lab = validate_section(f"{src} [lab]", raw.get("lab", {}), LAB_FIELDS)
    where = f"{src} [lab]"
    _strings(where, "models", lab["models"])
    _strings(where, "modes", lab["modes"], convert.MODES)
    if lab["parallel"] < 1:
        raise ConfigError(f"{where}: key 'parallel' must be >= 1")
    if lab["retries"] < 0 or lab["eval_limit"] < 0:
        raise ConfigError(f"{where}: keys 'retries' and 'eval_limit' must be >= 0")
    if lab["timeout_s"] <= 0:
        raise ConfigError(f"{where}: key 'timeout_s' must be > 0")
    run = _check_run(
        f"{src} [run]",
        validate_section(f"{src} [run]", _run_keys(f"{src} [run]", raw.get("run", {})), RUN_FIELDS),
    )
    budget = validate_section(f"{src} [budget]", raw.get("budget", {}), BUDGET_FIELDS)
    regression = validate_section(
        f"{src} [regression]", raw.get("regression", {}), REGRESSION_FIELDS
    )
    _check_regression(f"{src} [regression]", regression)
    model = validate_section(f"{src} [model]", raw.get("model", {}), MODEL_FIELDS)
    source = spec or lab["inventory"] or str(path)
    cls = backend_class(source)
    backend_settings: dict[str, Any] = {}
    for table, tcls in tables.items():
        if table in raw or tcls is cls:
            checked = validate_section(f"{src} [{table}]", raw.get(table, {}), tcls.fields)
            if tcls is cls:
                backend_settings = checked
    folder = Path.cwd() if spec and not raw else Path(path).parent
    backend = cls(source, backend_settings, lab, folder, f"{src} [{cls.table or 'devices'}]")
    raw_devices = raw.get("devices", {})
    if not isinstance(raw_devices, dict):
        raise ConfigError(f"{src}: [devices] must hold [devices.NAME] tables")
    if scheme_of(source) == "file":
        if not raw_devices:
            raise ConfigError(
                f'{src}: no devices; add at least one [devices.NAME] table (transport = "local" '
                f"for this machine)"
            )
        tables_by_name = raw_devices
    else:
        found = backend.discover() if discover else {}
        tables_by_name = {}
        for name, table in found.items():
            override = raw_devices.get(name) or {}
            if not isinstance(override, dict):
                raise ConfigError(f"{src} [devices.{name}]: must be a table of keys")
            tables_by_name[name] = {**table, **override}
    try:
        devices = {name: _device(name, d, src, lab) for name, d in tables_by_name.items()}
    except BaseException:
        backend.close()  # e.g. a labgrid session opened by discover(): no run will close it
        raise
    return Inventory(
        path, lab, run, budget, regression, model, devices, backend=backend, base=folder
    )


def load_inventory(path: Path | str, discover: bool = True) -> Inventory:
    """Read and validate a lab inventory (a lab.toml path, or a backend URL such as
    `labgrid://HOST:PORT?TAG=VALUE`); ConfigError (exit 2) names file, device and key."""
    spec = str(path)
    if scheme_of(spec) != "file":
        inv = parse_inventory({}, Path.cwd() / "lab.toml", spec=spec, discover=discover)
        return replace(inv, sha256=hashlib.sha256(spec.encode()).hexdigest())
    p = Path(spec).expanduser()
    if not p.is_file():
        raise ConfigError(
            f"inventory not found: {p}; copy the example lab.toml from the edgeq repository"
        )
    inv = parse_inventory(read_toml(p), p.resolve(), discover=discover)
    return replace(inv, sha256=hashlib.sha256(p.read_bytes()).hexdigest())
