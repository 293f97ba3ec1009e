"""edgeq.registry.Registry: the one registry type behind every extension point."""

from __future__ import annotations

import sys

import pytest

from edgeq.errors import ConfigError, UsageError
from edgeq.registry import Registry

pytestmark = pytest.mark.unit


@pytest.fixture()
def plugin_pkg(tmp_path, monkeypatch):
    """A throwaway package `plugs` whose modules `a`, `b`, `c` register themselves."""
    pkg = tmp_path / "plugs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from edgeq.registry import Registry\n"
        "from edgeq.errors import ConfigError\n"
        "REG = Registry('plug', error=ConfigError, package=__name__, modules=('a', 'b', 'c'))\n"
    )
    for name in "abc":
        (pkg / f"{name}.py").write_text(
            f"from plugs import REG\n\n@REG.register\nclass P:\n    name = {name!r}\n"
        )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for mod in [m for m in sys.modules if m == "plugs" or m.startswith("plugs.")]:
        del sys.modules[mod]


def test_modules_load_lazily_and_keep_the_declared_order(plugin_pkg):
    import plugs

    assert "plugs.a" not in sys.modules  # nothing imported before first use
    import plugs.c  # an implementation imported first must not come first

    assert plugs.REG.names() == ("a", "b", "c")
    assert [p.name for p in plugs.REG.values()] == ["a", "b", "c"]
    assert "b" in plugs.REG and len(plugs.REG) == 3


def test_unknown_name_names_the_choices_with_the_registry_error(plugin_pkg):
    import plugs

    with pytest.raises(ConfigError) as exc:
        plugs.REG.get("d", where="lab.toml [devices.x]")
    assert str(exc.value) == "lab.toml [devices.x]: unknown plug 'd'; choose from a, b, c"
    with pytest.raises(UsageError):
        plugs.REG.get("d", error=UsageError)


def test_a_second_implementation_under_a_taken_name_is_refused():
    reg: Registry[type] = Registry("thing")

    class One:
        name = "x"

    class Two:
        name = "x"

    assert reg.register(One) is One
    assert reg.register(One) is One  # the same object again is harmless
    with pytest.raises(ValueError, match="registered twice"):
        reg.register(Two)
    with pytest.raises(ValueError, match="non-empty name"):
        reg.register(type("Nameless", (), {"name": ""}))
