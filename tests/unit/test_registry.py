"""edgeq.registry: one Registry type (lookup by name, a "choose from" error for an unknown
one, registration order, lazy loading); the quant-mode and model-family registries are the
one list everything derives from."""

from __future__ import annotations

import dataclasses
import pkgutil

import pytest

from edgeq import config, convert, models, quantmodes
from edgeq.errors import ConfigError, UsageError
from edgeq.lab import load_inventory
from edgeq.registry import Registry
from tests.support.lab import write_inventory


def _modules(package) -> set[str]:
    # base: the interface; converter, selective: the engines the quant modes share;
    # recipe: the [model] keys (models/recipe.py)
    return {m.name for m in pkgutil.iter_modules(package.__path__)} - {
        "base",
        "converter",
        "selective",
        "recipe",
    }


def test_every_mode_module_is_registered_in_canonical_order():
    assert set(quantmodes.MODES) == _modules(quantmodes)
    assert quantmodes.MODES == ("float32", "dynamic", "float16", "int8", "int16x8")
    assert convert.MODES == quantmodes.MODES
    assert convert.CALIBRATED == ("int8", "int16x8")
    for name in quantmodes.MODES:
        mode = quantmodes.get(name)
        assert mode.name == name and mode.doc and callable(mode.configure)


def test_everything_derives_its_modes_from_the_registry(tmp_path):
    assert config.MODEL_FIELDS["mode"].choices == quantmodes.MODES
    assert convert.parse_modes(["all"]) == list(quantmodes.MODES)
    # the lab inventory takes every registered mode, and its refusal lists exactly them
    box = {"box": {"transport": "local"}}
    every = {"lab": {"modes": list(quantmodes.MODES)}}
    assert load_inventory(write_inventory(tmp_path / "lab.toml", every, box)).lab["modes"] == list(
        quantmodes.MODES
    )
    with pytest.raises(ConfigError) as exc:
        load_inventory(write_inventory(tmp_path / "lab.toml", {"lab": {"modes": ["int4"]}}, box))
    assert exc.value.message.endswith(
        "[lab]: key 'modes': 'int4' is not one of float32, dynamic, float16, int8, int16x8"
    )


def test_unknown_mode_and_family_name_the_choices():
    with pytest.raises(UsageError) as exc:
        quantmodes.get("int4")
    assert exc.value.message == (
        "unknown mode 'int4'; choose from float32, dynamic, float16, int8, int16x8 or all"
    )
    with pytest.raises(UsageError) as exc:
        models.family("resnet")
    assert exc.value.message == (
        "unknown model family 'resnet' for --family; choose one of: book, bngap, dsconv"
    )


def test_every_family_module_is_registered():
    assert set(models.FAMILIES) == _modules(models)
    assert config.MODEL_FIELDS["family"].choices == models.FAMILIES
    for name in models.FAMILIES:
        fam = models.family(name)
        assert fam.name == name and fam.doc and 0 <= fam.default_dropout < 1


def test_int8_takes_the_keep_float_options_and_others_do_not():
    assert set(quantmodes.get("int8").options) == {
        "keep_float",
        "keep_float_auto",
        "max_latency_ms",
    }
    assert all(not quantmodes.get(m).options for m in quantmodes.MODES if m != "int8")
    with pytest.raises(UsageError, match="--keep-float applies to mode int8"):
        convert._split_options(["float32", "float16"], {"keep_float": ["conv1"]})
    split = convert._split_options(["float32", "int8"], {"keep_float": ["conv1"]})
    assert split == {"float32": {}, "int8": {"keep_float": ["conv1"]}}
    # a limit of 0 pp is a limit, not "no option"; empty lists and None are not given
    split = convert._split_options(["int8"], {"keep_float": [], "keep_float_auto": 0.0})
    assert split == {"int8": {"keep_float_auto": 0.0}}


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        quantmodes.register(dataclasses.replace(quantmodes.get("int8")))
    with pytest.raises(ValueError, match="registered twice"):
        models.register(dataclasses.replace(models.family("book")))


def test_convert_takes_each_declared_mode_option_and_combines_its_values():
    from typer.testing import CliRunner

    from edgeq.cli.main import app

    help_text = CliRunner().invoke(app, ["convert", "--help"], env={"COLUMNS": "200"}).output
    declared = quantmodes.options()
    assert set(declared) == {"keep_float", "keep_float_auto", "max_latency_ms"}
    for option in declared.values():
        for param in option.cli:
            assert param.flag in help_text
    keep, auto = declared["keep_float"], declared["keep_float_auto"]
    assert keep.from_cli({"keep_float": ["a,b", "c"]}) == ["a", "b", "c"]
    assert auto.from_cli({"keep_float_auto": False, "max_drop_pp": 0.5}) is None
    assert auto.from_cli({"keep_float_auto": True, "max_drop_pp": 0.5}) == 0.5
    assert auto.validation and not keep.validation
    with pytest.raises(UsageError, match="use --keep-float or --keep-float-auto, not both"):
        convert._split_options(["int8"], {"keep_float": ["conv1"], "keep_float_auto": 0.1})
    # --max-latency-ms refines --keep-float-auto: alone it is refused, before any work
    latency = declared["max_latency_ms"]
    assert latency.requires == ("keep_float_auto",) and latency.from_cli({"max_latency_ms": 2.5})
    with pytest.raises(UsageError, match="--max-latency-ms is an option of --keep-float-auto"):
        convert._split_options(["int8"], {"max_latency_ms": 2.5})
    split = convert._split_options(["int8"], {"keep_float_auto": 0.1, "max_latency_ms": 2.5})
    assert split == {"int8": {"keep_float_auto": 0.1, "max_latency_ms": 2.5}}


# --------------------------------------------------------------------------- Registry


class _Item:
    def __init__(self, name: str) -> None:
        self.name = name


def test_a_registry_resolves_every_name_in_registration_order():
    reg: Registry[_Item] = Registry("widget")
    items = [reg.register(_Item(n)) for n in ("zeta", "alpha", "mid")]
    assert reg.names() == ("zeta", "alpha", "mid")  # registration order, not sorted
    assert list(reg) == ["zeta", "alpha", "mid"] and len(reg) == 3
    assert [reg.get(n) for n in reg] == items
    assert reg["alpha"] is items[1] and "mid" in reg and "other" not in reg
    assert reg.items() == list(zip(("zeta", "alpha", "mid"), items, strict=True))
    assert reg.values() == items


def test_an_unknown_name_is_the_registrys_error_with_the_choices():
    reg: Registry[_Item] = Registry("widget", error=ConfigError)
    for n in ("b", "a"):
        reg.register(_Item(n))
    with pytest.raises(ConfigError) as exc:
        reg.get("c")
    assert exc.value.message == "unknown widget 'c'; choose from b, a"
    with pytest.raises(ConfigError) as exc:
        reg["c"]
    assert exc.value.message == "unknown widget 'c'; choose from b, a"
    with pytest.raises(UsageError) as exc:
        reg.get("c", where="lab.toml [devices.x]", error=UsageError)
    assert type(exc.value) is UsageError
    assert exc.value.message == "lab.toml [devices.x]: unknown widget 'c'; choose from b, a"


def test_a_registry_key_can_be_an_attribute_or_a_function():
    by_attr: Registry[_Item] = Registry("widget", key="name")
    by_func: Registry[_Item] = Registry("widget", key=lambda item: item.name.upper())
    item = _Item("x")
    assert by_attr.register(item) is item and by_func.register(item) is item
    assert by_attr.names() == ("x",) and by_func.names() == ("X",)


def test_registering_twice_or_without_a_name_is_refused():
    reg: Registry[_Item] = Registry("widget")
    first = reg.register(_Item("a"))
    assert reg.register(first) is first  # the same object again is harmless
    with pytest.raises(ValueError, match="widget 'a' is registered twice"):
        reg.register(_Item("a"))
    with pytest.raises(ValueError, match="a widget needs a non-empty name, got ''"):
        reg.register(_Item(""))
    assert reg.names() == ("a",)


def test_implementation_modules_are_imported_on_first_use_in_their_order(tmp_path, monkeypatch):
    pkg = tmp_path / "edgeq_test_plugins"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from edgeq.registry import Registry\n")
    (pkg / "reg.py").write_text(
        "from edgeq.registry import Registry\n"
        "WIDGETS = Registry('widget', key=lambda f: f.__name__, "
        "package='edgeq_test_plugins', modules=('second', 'first'))\n"
    )
    for name in ("first", "second"):
        (pkg / f"{name}.py").write_text(
            f"from edgeq_test_plugins.reg import WIDGETS\n@WIDGETS.register\ndef {name}(): ...\n"
        )
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys

    reg_mod = importlib.import_module("edgeq_test_plugins.reg")
    try:
        assert "edgeq_test_plugins.first" not in sys.modules  # nothing imported yet
        importlib.import_module("edgeq_test_plugins.first")  # imported first, still listed second
        assert reg_mod.WIDGETS.names() == ("second", "first")  # the order of `modules`
        assert "edgeq_test_plugins.first" in sys.modules
        assert reg_mod.WIDGETS.get("first").__name__ == "first"
    finally:
        for mod in [m for m in sys.modules if m.startswith("edgeq_test_plugins")]:
            del sys.modules[mod]
