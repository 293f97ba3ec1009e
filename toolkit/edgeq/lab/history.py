"""The lab's memory: every run and every device × model result, in one SQLite file.

Why SQLite: one file, stdlib `sqlite3`, transactions, and safe concurrent writers from
several processes on one host. The database runs in WAL mode (readers never block the
writer) with a busy timeout, and each result — its row, its metrics and its checks — is
written in ONE `BEGIN IMMEDIATE` transaction: a crash leaves either the whole result or
nothing.

Another process holding a write transaction for long (a second lab host on the same file,
`sqlite3` left open in a shell) is waited for with backoff; past `timeout_s` the error
(`HistoryLocked`, exit 2) names the file and what to do — and the lab keeps the results it
could not write in a file beside it (see the scheduler).

The schema is versioned with `PRAGMA user_version` (and a `schema_migrations` log);
`MIGRATIONS[n]` takes a database from version n-1 to n, applied in order inside one
transaction when the file is opened. A file written by a newer edgeq is refused.

Tables (version 2; v2 allowed the `busy` status, added `error_json` and keyed a model's
series by its content: `series_key` = the artifact's sha256, else its name):
    runs(run_id PK, started_utc, finished_utc, status, exit_code, edgeq_version, git_sha,
         host, inventory, inventory_sha256, command, settings_json)
    results(id PK, run_id → runs, device, transport, address, identity, tags_json,
            features_json, model, artifact_path, artifact_sha256, mode, status, reason,
            error_type, error_text, attempts, started_utc, finished_utc, bench_start,
            bench_end, environment_json, result_json)
    metrics(result_id → results, name, value)            one row per numeric metric
    checks(result_id → results, name, kind, passed, measured, limit_value, op, unit, message)
    findings(result_id → results, kind, check_name, message, since_utc, since_run_id,
             last_pass_run_id)                        "failing since …", recoveries
    schema_migrations(version PK, applied_utc, edgeq_version)
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tenacity

from .. import __version__, interrupts
from ..errors import ConfigError, UsageError
from ..status import RECORDED


class HistoryLocked(UsageError):
    """Another process kept the history's write lock for longer than we wait."""


def _locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


STATUSES = RECORDED


#: What a device × model series is keyed by: the model's content, else (rows written
#: without an artifact hash) its name. A new model on a device starts a new series.
def series_key(table: str = "", by: str = "content") -> str:
    """The SQL expression of a result's series key (`table`: an alias prefix like "r.");
    `by = "name"` ([regression] series = "name"): the model's name (label) alone, so a
    model that changes under one name is one series."""
    if by == "name":
        return f"{table}model"
    return f"COALESCE(NULLIF({table}artifact_sha256, ''), {table}model)"


SERIES_KEY = series_key()
RESULT_COLUMNS = (
    "run_id",
    "device",
    "transport",
    "address",
    "identity",
    "model",
    "artifact_path",
    "artifact_sha256",
    "mode",
    "status",
    "reason",
    "error_type",
    "error_text",
    "attempts",
    "started_utc",
    "finished_utc",
    "bench_start",
    "bench_end",
)

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            started_utc TEXT NOT NULL,
            finished_utc TEXT,
            status TEXT NOT NULL,
            exit_code INTEGER,
            edgeq_version TEXT NOT NULL,
            git_sha TEXT,
            host TEXT NOT NULL,
            inventory TEXT,
            inventory_sha256 TEXT,
            command TEXT,
            settings_json TEXT NOT NULL DEFAULT '{}'
        )""",
        """CREATE TABLE results (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL REFERENCES runs(run_id),
            device TEXT NOT NULL,
            transport TEXT NOT NULL,
            address TEXT NOT NULL DEFAULT '',
            identity TEXT NOT NULL DEFAULT '',
            tags_json TEXT NOT NULL DEFAULT '[]',
            features_json TEXT NOT NULL DEFAULT '[]',
            model TEXT NOT NULL,
            artifact_path TEXT,
            artifact_sha256 TEXT,
            mode TEXT,
            status TEXT NOT NULL CHECK (status IN ('pass', 'fail', 'error', 'quarantined')),
            reason TEXT NOT NULL DEFAULT '',
            error_type TEXT,
            error_text TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            started_utc TEXT NOT NULL,
            finished_utc TEXT NOT NULL,
            bench_start REAL,
            bench_end REAL,
            environment_json TEXT,
            result_json TEXT
        )""",
        "CREATE INDEX results_series ON results(device, model, started_utc)",
        "CREATE INDEX results_run ON results(run_id)",
        """CREATE TABLE metrics (
            result_id INTEGER NOT NULL REFERENCES results(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            value REAL NOT NULL,
            PRIMARY KEY (result_id, name)
        )""",
        """CREATE TABLE checks (
            result_id INTEGER NOT NULL REFERENCES results(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            passed INTEGER,
            measured REAL,
            limit_value REAL,
            op TEXT NOT NULL DEFAULT '',
            unit TEXT NOT NULL DEFAULT '',
            message TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (result_id, name)
        )""",
        """CREATE TABLE findings (
            result_id INTEGER NOT NULL REFERENCES results(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            check_name TEXT NOT NULL,
            message TEXT NOT NULL,
            since_utc TEXT,
            since_run_id TEXT,
            last_pass_run_id TEXT
        )""",
        "CREATE INDEX findings_result ON findings(result_id)",
    ),
}
_V2_RESULTS = """CREATE TABLE results_v2 (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL REFERENCES runs(run_id),
            device TEXT NOT NULL,
            transport TEXT NOT NULL,
            address TEXT NOT NULL DEFAULT '',
            identity TEXT NOT NULL DEFAULT '',
            tags_json TEXT NOT NULL DEFAULT '[]',
            features_json TEXT NOT NULL DEFAULT '[]',
            model TEXT NOT NULL,
            artifact_path TEXT,
            artifact_sha256 TEXT,
            mode TEXT,
            status TEXT NOT NULL CHECK (status IN (%s)),
            reason TEXT NOT NULL DEFAULT '',
            error_type TEXT,
            error_text TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            started_utc TEXT NOT NULL,
            finished_utc TEXT NOT NULL,
            bench_start REAL,
            bench_end REAL,
            environment_json TEXT,
            result_json TEXT,
            error_json TEXT
        )""".replace("%s", ", ".join(f"'{s}'" for s in RECORDED))

MIGRATIONS[2] = (
    _V2_RESULTS,
    "INSERT INTO results_v2 SELECT *, NULL FROM results",
    "DROP TABLE results",
    "ALTER TABLE results_v2 RENAME TO results",
    "CREATE INDEX results_series ON results(device, model, started_utc)",
    "CREATE INDEX results_run ON results(run_id)",
    f"CREATE INDEX results_key ON results(device, {SERIES_KEY}, started_utc)",
)
# v3: the `suspect` status (a measured run whose validity is not valid) joins the CHECK
MIGRATIONS[3] = (
    _V2_RESULTS.replace("results_v2", "results_v3"),
    "INSERT INTO results_v3 SELECT * FROM results",
    "DROP TABLE results",
    "ALTER TABLE results_v3 RENAME TO results",
    "CREATE INDEX results_series ON results(device, model, started_utc)",
    "CREATE INDEX results_run ON results(run_id)",
    f"CREATE INDEX results_key ON results(device, {SERIES_KEY}, started_utc)",
)
SCHEMA_VERSION = max(MIGRATIONS)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def git_sha() -> str | None:
    """The commit of the edgeq source tree in use, when it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = res.stdout.strip()
    return sha if res.returncode == 0 and len(sha) == 40 else None


def provenance() -> dict[str, Any]:
    """What produced a run: edgeq version, git sha when available, host."""
    return {"edgeq_version": __version__, "git_sha": git_sha(), "host": socket.gethostname()}


class History:
    """The SQLite history. Thread-safe (one connection behind a lock); many processes may
    open the same file at once. Close it (or use `with`)."""

    def __init__(self, path: Path, timeout_s: float = 60.0, readonly: bool = False) -> None:
        self.path = Path(path)
        self.timeout_s = float(timeout_s)
        if readonly and self._open_readonly():
            return
        # SQLite's own busy wait per try; the tries back off up to timeout_s in total
        busy_ms = int(min(self.timeout_s, 2.0) * 1000)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(self.path),
                timeout=busy_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(
                f"cannot open the lab history {self.path}: {exc}; choose a writable --db"
            ) from None
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        try:
            self._db.execute(f"PRAGMA busy_timeout = {busy_ms}")
            self._refuse_foreign()  # before anything writes to the file
            self._retrying(lambda: self._db.execute("PRAGMA journal_mode = WAL"))
            self._db.execute("PRAGMA synchronous = NORMAL")
            # Migrations rebuild tables; foreign keys are switched on only afterwards (a
            # rebuilt parent table must not cascade-delete its children).
            self._db.execute("PRAGMA foreign_keys = OFF")
            self.migrate()
            self._db.execute("PRAGMA foreign_keys = ON")
        except HistoryLocked:
            self._db.close()
            raise
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise ConfigError(
                f"{self.path}: not a usable edgeq lab history ({exc}); point --db elsewhere"
            ) from None

    def _refuse_foreign(self) -> None:
        """A SQLite file of another application is never extended with edgeq's tables."""
        if self.version:
            return
        tables = [
            r[0]
            for r in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        if tables:
            self._db.close()
            raise ConfigError(
                f"{self.path} is not an edgeq lab history (it holds another application's "
                f"tables: {', '.join(sorted(tables)[:5])}); point --db at a new file"
            )

    def _open_readonly(self) -> bool:
        """Open for reading only (reports): never writes, so a history on a read-only
        filesystem, or one that is not ours to change, can be read. SQLite needs to write a
        WAL file's index next to it; where it cannot, the file is read as immutable. False:
        the history needs a migration and can be written, so open it the usual way."""
        self._lock = threading.RLock()
        uri = self.path.resolve().as_uri()
        last: Exception | None = None
        for flags in ("mode=ro", "mode=ro&immutable=1"):
            try:
                db = sqlite3.connect(
                    f"{uri}?{flags}", uri=True, isolation_level=None, check_same_thread=False
                )
                version = int(db.execute("PRAGMA user_version").fetchone()[0])
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.Error as exc:
                last = exc
                continue
            if version < SCHEMA_VERSION:
                db.close()
                if os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK):
                    return False
                raise ConfigError(
                    f"{self.path}: an older edgeq lab history (schema {version}, this edgeq "
                    f"reads {SCHEMA_VERSION}); run `edgeq lab run` once to upgrade it, or copy "
                    f"it somewhere writable and report from the copy"
                )
            if version > SCHEMA_VERSION:
                db.close()
                raise ConfigError(
                    f"{self.path}: not a usable edgeq lab history (schema {version}, newer "
                    f"than this edgeq's {SCHEMA_VERSION}); upgrade edgeq"
                )
            db.row_factory = sqlite3.Row
            self._db = db
            return True
        raise ConfigError(
            f"{self.path}: not a usable edgeq lab history ({last}); point --db elsewhere"
        )

    def _retrying(self, fn):
        """`fn()`, tried again with exponential backoff while another process holds the
        lock, up to `timeout_s`; then HistoryLocked with the fix."""

        def before_sleep(state: tenacity.RetryCallState) -> None:
            interrupts.check()

        try:
            return tenacity.Retrying(
                retry=tenacity.retry_if_exception(_locked),
                wait=tenacity.wait_exponential(multiplier=0.1, max=5.0),
                stop=tenacity.stop_after_delay(self.timeout_s),
                before_sleep=before_sleep,
                reraise=True,
            )(fn)
        except sqlite3.OperationalError as exc:
            if not _locked(exc):
                raise
            raise HistoryLocked(
                f"the lab history {self.path} is locked by another process and stayed locked "
                f"for {self.timeout_s:g} s (another `edgeq lab run` writing, or an open "
                f"sqlite3 session; `fuser -v {self.path}` shows who); close it and run again, "
                f"raise history_timeout_s in [lab], or give another --db"
            ) from None

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on any error): all or nothing."""
        with self._lock:
            self._retrying(lambda: self._db.execute("BEGIN IMMEDIATE"))
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @property
    def version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, target: int | None = None) -> int:
        """Bring the file to `target` (default: the newest schema); returns the version."""
        target = SCHEMA_VERSION if target is None else target
        with self.transaction() as db:
            current = int(db.execute("PRAGMA user_version").fetchone()[0])
            if current > SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.path}: history schema v{current} is newer than this edgeq "
                    f"understands (v{SCHEMA_VERSION}); upgrade edgeq"
                )
            if current < target:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                    " applied_utc TEXT NOT NULL, edgeq_version TEXT NOT NULL)"
                )
            for version in range(current + 1, target + 1):
                for statement in MIGRATIONS[version]:
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (version, utc_now(), __version__),
                )
                db.execute(f"PRAGMA user_version = {version}")
            return max(current, target)

    # ------------------------------------------------------------------ writing

    def start_run(
        self,
        run_id: str,
        started_utc: str,
        inventory: str = "",
        inventory_sha256: str = "",
        command: str = "",
        settings: dict[str, Any] | None = None,
        origin: dict[str, Any] | None = None,
    ) -> None:
        origin = origin or provenance()
        with self.transaction() as db:
            self._mark_killed(db, origin.get("host", ""))
            db.execute(
                "INSERT INTO runs (run_id, started_utc, status, edgeq_version, git_sha, host, "
                "inventory, inventory_sha256, command, settings_json) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    started_utc,
                    origin.get("edgeq_version", __version__),
                    origin.get("git_sha"),
                    origin.get("host", ""),
                    inventory,
                    inventory_sha256,
                    command,
                    json.dumps(settings or {}),
                ),
            )

    def _mark_killed(self, db: sqlite3.Connection, host: str) -> None:
        """Runs of this host still `running` whose edgeq is gone (killed with -9, or the
        machine lost power) become `interrupted`, so no run stays running forever."""
        for row in db.execute(
            "SELECT run_id, settings_json FROM runs WHERE status = 'running' AND host = ?",
            (host,),
        ).fetchall():
            try:
                pid = int(json.loads(row["settings_json"] or "{}").get("pid") or 0)
            except (ValueError, TypeError, AttributeError):
                continue
            if pid <= 0 or pid == os.getpid() or _alive(pid):
                continue
            db.execute(
                "UPDATE runs SET status = 'interrupted', finished_utc = ? WHERE run_id = ?",
                (utc_now(), row["run_id"]),
            )

    def finish_run(self, run_id: str, status: str, exit_code: int | None) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET finished_utc = ?, status = ?, exit_code = ? WHERE run_id = ?",
                (utc_now(), status, exit_code, run_id),
            )

    def record(self, row: dict[str, Any]) -> int:
        """Write one result with its metrics and checks in one transaction; returns its id.

        `row` holds the `results` columns plus `metrics` ({name: value}) and `checks`
        (dicts with name, kind, passed, measured, limit, op, unit, message).
        """
        if row["status"] not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {row['status']!r}")
        cols = list(RESULT_COLUMNS)
        values = [row.get(c) for c in cols]
        values[cols.index("reason")] = row.get("reason") or ""
        values[cols.index("address")] = row.get("address") or ""
        values[cols.index("identity")] = row.get("identity") or ""
        values[cols.index("attempts")] = row.get("attempts") or 0
        jcols = {
            "tags_json": row.get("tags") or [],
            "features_json": row.get("features") or [],
            "environment_json": row.get("environment"),
            "result_json": row.get("result"),
            "error_json": row.get("error"),
        }
        sql = (
            f"INSERT INTO results ({', '.join(cols + list(jcols))}) "
            f"VALUES ({', '.join('?' * (len(cols) + len(jcols)))})"
        )
        jvals = [None if v is None else json.dumps(v) for v in jcols.values()]
        with self.transaction() as db:
            cur = db.execute(sql, values + jvals)
            rid = int(cur.lastrowid)
            db.executemany(
                "INSERT INTO metrics (result_id, name, value) VALUES (?, ?, ?)",
                [(rid, k, float(v)) for k, v in (row.get("metrics") or {}).items()],
            )
            db.executemany(
                "INSERT INTO checks (result_id, name, kind, passed, measured, limit_value, op, "
                "unit, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        rid,
                        c["name"],
                        c["kind"],
                        None if c.get("passed") is None else int(bool(c["passed"])),
                        c.get("measured"),
                        c.get("limit"),
                        c.get("op") or "",
                        c.get("unit") or "",
                        c.get("message") or "",
                    )
                    for c in row.get("checks") or []
                ],
            )
            db.executemany(
                "INSERT INTO findings (result_id, kind, check_name, message, since_utc, "
                "since_run_id, last_pass_run_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        rid,
                        f["kind"],
                        f["check"],
                        f["message"],
                        f.get("since_utc"),
                        f.get("since_run_id"),
                        f.get("last_pass_run_id"),
                    )
                    for f in row.get("findings") or []
                ],
            )
        return rid

    # ------------------------------------------------------------------ reading

    def _all(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args))

    def runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first."""
        sql = "SELECT * FROM runs ORDER BY started_utc DESC, rowid DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [dict(r) for r in self._all(sql)]

    def run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._all("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return dict(rows[0]) if rows else None

    def latest_run_id(self) -> str | None:
        rows = self.runs(limit=1)
        return rows[0]["run_id"] if rows else None

    def results(
        self,
        run_id: str | None = None,
        device: str | None = None,
        model: str | None = None,
        full: bool = True,
    ) -> list[dict[str, Any]]:
        """Results (oldest first) with their metrics and checks, filtered as asked."""
        where, args = [], []
        for col, val in (("run_id", run_id), ("device", device), ("model", model)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        sql = "SELECT * FROM results"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_utc, id"
        rows = [dict(r) for r in self._all(sql, tuple(args))]
        if not rows:
            return rows
        ids = [r["id"] for r in rows]
        metrics: dict[int, dict[str, float]] = {i: {} for i in ids}
        checks: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        marks = ",".join("?" * len(ids))
        for m in self._all(f"SELECT * FROM metrics WHERE result_id IN ({marks})", tuple(ids)):
            metrics[m["result_id"]][m["name"]] = m["value"]
        for c in self._all(
            f"SELECT * FROM checks WHERE result_id IN ({marks}) ORDER BY rowid", tuple(ids)
        ):
            checks[c["result_id"]].append(
                {
                    "name": c["name"],
                    "kind": c["kind"],
                    "passed": None if c["passed"] is None else bool(c["passed"]),
                    "measured": c["measured"],
                    "limit": c["limit_value"],
                    "op": c["op"],
                    "unit": c["unit"],
                    "message": c["message"],
                }
            )
        findings: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        for f in self._all(
            f"SELECT * FROM findings WHERE result_id IN ({marks}) ORDER BY rowid", tuple(ids)
        ):
            findings[f["result_id"]].append(
                {
                    "device": None,
                    "model": None,
                    "kind": f["kind"],
                    "check": f["check_name"],
                    "message": f["message"],
                    "since_utc": f["since_utc"],
                    "since_run_id": f["since_run_id"],
                    "last_pass_run_id": f["last_pass_run_id"],
                }
            )
        for r in rows:
            for f in findings[r["id"]]:
                f["device"], f["model"] = r["device"], r["model"]
            r["findings"] = findings[r["id"]]
            for key in (
                "tags_json",
                "features_json",
                "environment_json",
                "result_json",
                "error_json",
            ):
                text = r.pop(key)
                if full or key in ("tags_json", "features_json"):
                    r[key[:-5]] = None if text is None else json.loads(text)
            r["metrics"] = metrics[r["id"]]
            r["checks"] = checks[r["id"]]
        return rows

    def series(
        self, device: str, key: str, limit: int = 500, by: str = "content"
    ) -> list[dict[str, Any]]:
        """Earlier results of one device × model (`key`: the model's sha256, or its name
        for rows without one; `by`: see `series_key`), newest first, with the check
        outcomes: [{id, run_id, started_utc, status, checks: {name: passed}}]."""
        rows = self._all(
            f"SELECT id, run_id, started_utc, status FROM results WHERE device = ? AND "
            f"{series_key('', by)} = ? ORDER BY started_utc DESC, id DESC LIMIT ?",
            (device, key, limit),
        )
        out = [dict(r) | {"checks": {}} for r in rows]
        if out:
            by_id = {r["id"]: r for r in out}
            marks = ",".join("?" * len(by_id))
            for c in self._all(
                f"SELECT result_id, name, passed FROM checks WHERE result_id IN ({marks})",
                tuple(by_id),
            ):
                by_id[c["result_id"]]["checks"][c["name"]] = (
                    None if c["passed"] is None else bool(c["passed"])
                )
        return out

    def last_pass(self, device: str, key: str, by: str = "content") -> dict[str, Any] | None:
        """The newest passing result of device × model (`key` as for `series`): its run id,
        time, edgeq version and result document (what "what changed" compares with)."""
        rows = self._all(
            "SELECT r.run_id, r.started_utc, r.result_json, u.edgeq_version FROM results r "
            f"LEFT JOIN runs u ON u.run_id = r.run_id WHERE r.device = ? AND "
            f"{series_key('r.', by)} = ? AND r.status = 'pass' "
            "ORDER BY r.started_utc DESC, r.id DESC LIMIT 1",
            (device, key),
        )
        if not rows:
            return None
        row = dict(rows[0])
        try:
            row["result"] = json.loads(row.pop("result_json") or "null")
        except ValueError:
            row["result"] = None
        return row

    def measured_values(
        self, device: str, key: str, metric: str, limit: int, by: str = "content"
    ) -> list[tuple[str, float]]:
        """(status, value) of `metric` in the last `limit` valid measured results (pass or
        fail; not suspect) of device × model, newest first."""
        rows = self._all(
            "SELECT r.status, m.value FROM results r JOIN metrics m ON m.result_id = r.id "
            f"AND m.name = ? WHERE r.device = ? AND {series_key('r.', by)} = ?"
            " AND r.status IN ('pass', 'fail') ORDER BY r.started_utc DESC, r.id DESC LIMIT ?",
            (metric, device, key, limit),
        )
        return [(str(r[0]), float(r[1])) for r in rows]

    def passing_values(
        self, device: str, key: str, metric: str, limit: int, by: str = "content"
    ) -> list[float]:
        """`metric` in the last `limit` passing results of device × model (`key` and `by`
        as for `series`), newest first."""
        rows = self._all(
            "SELECT m.value FROM results r JOIN metrics m ON m.result_id = r.id AND m.name = ?"
            f" WHERE r.device = ? AND {series_key('r.', by)} = ?"
            " AND r.status = 'pass' ORDER BY r.started_utc DESC, r.id DESC LIMIT ?",
            (metric, device, key, limit),
        )
        return [float(r[0]) for r in rows]

    def passing_op_profiles(
        self, device: str, key: str, limit: int, by: str = "content"
    ) -> list[dict[str, Any]]:
        """The run documents' `op_profile` of the last `limit` passing results of device ×
        model that have one (`key` and `by` as for `series`), newest first."""
        rows = self._all(
            "SELECT result_json FROM results r"
            f" WHERE r.device = ? AND {series_key('r.', by)} = ?"
            " AND r.status = 'pass' AND r.result_json LIKE '%\"run_order\"%'"
            " ORDER BY r.started_utc DESC, r.id DESC LIMIT ?",
            (device, key, limit),
        )
        out = []
        for (text,) in rows:
            try:
                prof = ((json.loads(text) or {}).get("run") or {}).get("op_profile")
            except (TypeError, ValueError):
                continue
            if prof and prof.get("run_order"):
                out.append(prof)
        return out

    def integrity(self) -> str:
        """`PRAGMA integrity_check` ('ok' when the file is sound)."""
        return str(self._all("PRAGMA integrity_check")[0][0])
