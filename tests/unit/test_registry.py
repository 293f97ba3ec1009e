"""The quant-mode and model-family registries are the one list everything derives from."""

from __future__ import annotations

import pkgutil

import pytest

from edgeq import config, convert, models, quantmodes
from edgeq.errors import UsageError
from edgeq.lab import inventory


def _modules(package) -> set[str]:
    return {m.name for m in pkgutil.iter_modules(package.__path__)} - {"base"}


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
        quantmodes.register(quantmodes.get("int8"))
    with pytest.raises(ValueError, match="registered twice"):
        models.register(models.family("book"))
