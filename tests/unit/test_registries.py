"""The quant-mode and model-family registries are the one list everything derives from."""

from __future__ import annotations

import dataclasses
import pkgutil

import pytest

from edgeq import config, convert, models, quantmodes
from edgeq.errors import UsageError
from edgeq.lab import inventory


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


def test_everything_derives_its_modes_from_the_registry():
    assert config.MODEL_FIELDS["mode"].choices == quantmodes.MODES
    assert inventory.convert.MODES is quantmodes.MODES
    assert convert.parse_modes(["all"]) == list(quantmodes.MODES)


def test_every_family_module_is_registered():
    assert set(models.FAMILIES) == _modules(models)
    assert config.MODEL_FIELDS["family"].choices == models.FAMILIES
    for name in models.FAMILIES:
        fam = models.family(name)
        assert fam.name == name and fam.doc and 0 <= fam.default_dropout < 1


def test_int8_takes_the_keep_float_options_and_others_do_not():
    assert set(quantmodes.get("int8").options) == {"keep_float", "keep_float_auto"}
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
