"""convert/inspect's own data: a multi-input .npz, or one without labels, is a usage error
(exit 2) saying why, not an internal error."""

from __future__ import annotations

import numpy as np
import pytest

from edgeq import convert
from edgeq.errors import UsageError

pytestmark = pytest.mark.unit


def test_a_multi_input_npz_is_a_usage_error_naming_its_arrays(tmp_path):
    f = tmp_path / "two.npz"
    np.savez(f, image=np.zeros((2, 4, 4, 3), np.uint8), vector=np.zeros((2, 4), np.float32))
    with pytest.raises(UsageError, match=r"one array per input \(image, vector\).*deploy"):
        convert.training_data("mnist", f, model=None)


def test_an_npz_without_labels_is_a_usage_error(tmp_path):
    f = tmp_path / "x.npz"
    np.savez(f, x=np.zeros((3, 4), np.float32))
    with pytest.raises(UsageError, match="x only"):
        convert.training_data("mnist", f, model=None)
