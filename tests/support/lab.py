"""lab.toml for tests, and the sshd setting that makes a test "Pi" behave like one."""

from __future__ import annotations

import json
from pathlib import Path

#: The test sshd serves root, whose ~/.bashrc on this host runs `pyenv init` (~0.2 s of CPU
#: per command). A Pi's shell does not; SHLVL=1 makes bash skip the rc file, as on a Pi.
PI_SSHD = "SetEnv SHLVL=1"


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v))


def write_inventory(path: Path, sections: dict[str, dict], devices: dict[str, dict]) -> Path:
    """lab.toml from {section: {key: value}} and {device: {key: value}}."""
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        lines.append("")
    for name, values in devices.items():
        lines.append(f"[devices.{json.dumps(name)}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path
