"""tfenv.runtime_notices_dropped: the runtime's notice goes, anything else on fd 2 stays."""

from __future__ import annotations

import os

from edgeq import tfenv


def test_the_notice_is_dropped_and_a_real_error_still_reaches_stderr(capfd, monkeypatch):
    monkeypatch.delenv("EDGEQ_TF_VERBOSE", raising=False)
    with tfenv.runtime_notices_dropped():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"ERROR: Didn't find op for builtin opcode 'FOO'\n")
    err = capfd.readouterr().err
    assert "XNNPACK" not in err
    assert "ERROR: Didn't find op for builtin opcode 'FOO'" in err


def test_debug_keeps_the_notice(capfd, monkeypatch):
    monkeypatch.setenv("EDGEQ_TF_VERBOSE", "1")
    with tfenv.runtime_notices_dropped():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    assert "XNNPACK" in capfd.readouterr().err


def test_an_exception_in_the_block_restores_fd_2(capfd, monkeypatch):
    monkeypatch.delenv("EDGEQ_TF_VERBOSE", raising=False)
    try:
        with tfenv.runtime_notices_dropped():
            raise ValueError("boom")
    except ValueError:
        pass
    os.write(2, b"after\n")
    assert "after" in capfd.readouterr().err
