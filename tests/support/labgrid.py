"""A real labgrid lab on 127.0.0.1 for the tests: `labgrid-coordinator`, `labgrid-exporter`s
exporting `NetworkService` resources (the test sshd "Pis" and phone hosts), and places made
with `labgrid-client` — the same three programs a hardware lab runs.

labgrid-client identifies its user as HOST/USER from `LG_HOSTNAME` / `LG_USERNAME`, so
"somebody else" is the same binary with another `LG_USERNAME`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .sshd import free_port

BIN = Path(sys.executable).parent
ENV = {"GRPC_ENABLE_FORK_SUPPORT": "0", "PYTHONUNBUFFERED": "1"}


def available() -> str | None:
    """None if labgrid's programs are installed here, else how to install them."""
    for prog in ("labgrid-coordinator", "labgrid-exporter", "labgrid-client"):
        if not (BIN / prog).exists() and not shutil.which(prog):
            return f"{prog} not installed: pip install -e '.[labgrid]' (make setup does)"
    return None


def program(name: str) -> str:
    return str(BIN / name) if (BIN / name).exists() else (shutil.which(name) or name)


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited: {path.read_text()[-2000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"{proc.args[0]} did not print {text!r}: {path.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen | None) -> None:
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class Exporter:
    """One `labgrid-exporter --name NAME` with one NetworkService group per sshd."""

    name: str
    root: Path
    address: str
    services: dict[str, dict] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self) -> Exporter:
        self.root.mkdir(parents=True, exist_ok=True)
        lines = []
        for group, params in self.services.items():
            inner = ", ".join(f"{k}: {v}" for k, v in params.items())
            lines.append(f"{group}:\n  NetworkService: {{{inner}}}")
        config = self.root / f"exports-{self.name}.yaml"
        config.write_text("\n".join(lines) + "\n")
        log = self.root / f"exporter-{self.name}.log"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [program("labgrid-exporter"), "-c", self.address, "--name", self.name, config],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env={**os.environ, **ENV},
            )
        _wait_for(log, "connected to coordinator", self.proc)
        return self

    def stop(self) -> None:
        _stop(self.proc)


@dataclass
class Lab:
    """A coordinator on a free port, its exporters, and a `labgrid-client` to drive it."""

    root: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    exporters: list[Exporter] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"labgrid://{self.address}"

    def preload_places(self, places: dict[str, tuple[str, dict[str, str]]]) -> None:
        """Write the coordinator's own state file (places.yaml) before it starts: how a
        lab's places survive a restart. For the benchmark's 64 places (3 labgrid-client
        calls each would take minutes); the tests make theirs with labgrid-client."""
        import yaml

        self.root.mkdir(parents=True, exist_ok=True)
        now = time.time()
        state = {}
        for name, (match, tags) in places.items():
            exporter, group, cls = match.split("/")
            state[name] = {
                "aliases": [],
                "comment": "",
                "tags": dict(tags),
                "matches": [
                    {"exporter": exporter, "group": group, "cls": cls, "name": None, "rename": None}
                ],
                "created": now,
                "changed": now,
            }
        (self.root / "places.yaml").write_text(yaml.safe_dump(state))

    def start(self) -> Lab:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        log = self.root / "coordinator.log"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [program("labgrid-coordinator"), "-l", self.address],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,  # its places.yaml lives here
                env={**os.environ, **ENV},
            )
        _wait_for(log, "Coordinator ready", self.proc)
        return self

    def stop(self) -> None:
        for e in self.exporters:
            e.stop()
        _stop(self.proc)

    def exporter(self, name: str, services: dict[str, dict], wait: bool = True) -> Exporter:
        """Start an exporter; with `wait`, return once the coordinator lists its resources."""
        exp = Exporter(name, self.root, self.address, services).start()
        self.exporters.append(exp)
        if wait:
            self.wait_for_resources()
        return exp

    def wait_for_resources(self, timeout: float = 60) -> None:
        """Until `labgrid-client resources` lists every exporter's every group."""
        want = {f"{e.name}/{g}/NetworkService" for e in self.exporters for g in e.services}
        deadline = time.time() + timeout
        while time.time() < deadline:
            if want <= set(self.client("resources").stdout.split()):
                return
            time.sleep(0.3)
        raise RuntimeError(f"exporters did not register: {want}")

    # ------------------------------------------------------------------ labgrid-client

    def client(self, *args: str, user: str | None = None, check: bool = True):
        env = {**os.environ, **ENV}
        if user:
            env["LG_USERNAME"] = user
        res = subprocess.run(
            [program("labgrid-client"), "-x", self.address, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        if check and res.returncode != 0:
            raise RuntimeError(f"labgrid-client {' '.join(args)}: {res.stderr}{res.stdout}")
        return res

    def make_place(self, name: str, match: str | None, tags: dict[str, str]) -> None:
        """`create`, `add-match`, `set-tags`: how a lab admin makes a place."""
        self.client("-p", name, "create")
        if match:
            self.client("-p", name, "add-match", match)
        self.client("-p", name, "set-tags", *(f"{k}={v}" for k, v in tags.items()))

    def make_places(self, places: dict[str, tuple[str, dict[str, str]]]) -> None:
        """Several places at once (each labgrid-client costs ~1 s: in parallel)."""
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda kv: self.make_place(kv[0], *kv[1]), places.items()))

    def show(self, place: str) -> dict:
        """`-p PLACE show` as data: tags, acquired (HOST/USER or None), reservation."""
        out = self.client("-p", place, "show").stdout
        info: dict = {"tags": {}, "acquired": None, "reservation": None}
        for line in out.splitlines():
            m = re.match(r"\s+(tags|acquired|reservation): (.*)$", line)
            if not m:
                continue
            key, value = m.groups()
            if key == "tags":
                info["tags"] = dict(kv.split("=", 1) for kv in value.split(", ") if kv)
            else:
                info[key] = None if value == "None" else value
        return info

    def acquired(self) -> dict[str, str]:
        """Every acquired place and its holder (`-v places`)."""
        out = self.client("-v", "places").stdout
        found, current = {}, None
        for line in out.splitlines():
            m = re.match(r"Place '(.+)':$", line)
            if m:
                current = m.group(1)
            m = re.match(r"\s+acquired: (.+)$", line)
            if m and current and m.group(1) != "None":
                found[current] = m.group(1)
        return found
