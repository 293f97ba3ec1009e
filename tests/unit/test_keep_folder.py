"""A `--keep` run folder survives later runs' sweeps; `edgeq cache prune --kept` removes it."""

from __future__ import annotations

import pytest

from edgeq.fields import TargetConfig
from edgeq.targets import cache, make_target
from edgeq.targets.base import KEPT_MARKER, owner_line

pytestmark = pytest.mark.unit


def _dead_owner() -> str:
    """The owner line of an edgeq process of this host that is gone (pid never alive)."""
    parts = owner_line().split()
    parts[3] = "4194304"  # above any pid_max: no such process
    return " ".join(parts)


def test_a_kept_folder_is_never_swept_and_prune_kept_removes_it(tmp_path):
    cfg = TargetConfig("local", "local", {"workdir": str(tmp_path), "python": "python3"})
    with make_target(cfg, keep=True) as kept_target:
        kept = kept_target.workdir
    assert (tmp_path / kept.rsplit("/", 1)[1] / KEPT_MARKER).is_file()
    # both folders now look like those of an edgeq that died
    orphan = tmp_path / "run.orphan1"
    orphan.mkdir()
    for folder in (orphan, tmp_path / kept.rsplit("/", 1)[1]):
        (folder / ".owner").write_text(_dead_owner() + "\n")
    with make_target(cfg) as later:
        assert later.workdir.startswith(str(tmp_path))
        assert later.swept == [str(orphan)]
    runs = sorted(p.name for p in tmp_path.glob("run.*"))
    assert runs == [kept.rsplit("/", 1)[1]]  # the kept one stays, the later one was removed
    assert cache.prune(tmp_path).removed == []
    report = cache.prune(tmp_path, kept=True)
    assert [r.path for r in report.removed] == [kept]
    assert not list(tmp_path.glob("run.*"))
