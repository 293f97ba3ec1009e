"""The report's overview matrix with 10 models × 20 devices in headless Chromium: at 1280
px it fits the page (no horizontal scrollbar, every model header and cell inside the
screen width, labels wrapping at `_ . -`), and at phone width only the matrix's own
scroller is wider than the screen, its device column staying in view. A device whose one
model errored reads as the device it is (it ran), not "ERROR". Screenshots go to
out/lab-report/wide-*.png."""

from __future__ import annotations

import pytest

from edgeq.lab import report
from edgeq.lab.history import History
from tests.lab.test_lab_report_browser import SHOTS, assert_quiet, browser, open_page  # noqa: F401
from tests.support import report_history as rh

DEVICES = [f"rpi{k:02d}-bench-rack" for k in range(20)]
MODELS = [
    f"{name}.tflite"
    for name in (
        "face_detection_short_range",
        "selfie_segmentation_landscape",
        "hand_landmark_full_int8",
        "wakeword_streaming_int8",
        "face_landmark_with_attention",
        "mnist_cnn_int8",
        "mnist_cnn_float32",
        "keyword_spotting_ds_cnn",
        "pose_landmark_lite",
        "object_detector_efficientdet",
    )
]


def _fill(path):
    with History(path) as h:
        for night in (1, 2, 3):
            run_id = f"run-{night:02d}"
            settings = {"devices": DEVICES, "models": MODELS}
            meta = {"edgeq_version": "0.4.0"}
            h.start_run(run_id, rh.started(night), "lab.toml", "0" * 64, "run", settings, meta)
            for d in DEVICES:
                for k, m in enumerate(MODELS):
                    status = "error" if (d == DEVICES[0] and k == 2 and night == 3) else "pass"
                    row = rh.base_row(night, d, m, status)
                    row["artifact_sha256"] = f"{k:02d}" * 32
                    row["environment"] = dict(rh.PI_ENV)
                    if status == "pass":
                        row["metrics"] = {"latency_p50": 1.0 + k, "model_bytes": 40_000.0}
                        row["checks"] = [{"name": "run", "kind": "run", "passed": True,
                                          "message": "ran"}]  # fmt: skip
                    else:
                        row["reason"] = "RunnerError: the model needs a custom op"
                        row["error_type"] = "RunnerError"
                    row["findings"] = []
                    rh.record(h, row)
            h.finish_run(run_id, "pass", 0)
    return path


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wide")
    with History(_fill(folder / "history.sqlite")) as h:
        doc = report.build(h)
    return report.write(doc, "html", folder / "lab-report.html"), doc


def test_a_10_by_20_matrix_fits_1280_px_and_scrolls_on_a_phone(browser, wide):  # noqa: F811
    path, doc = wide
    card = next(d for d in doc["devices"] if d["device"] == DEVICES[0])
    assert card["status"] == "pass" and card["model_errors"] == [MODELS[2]]

    page, seen = open_page(browser, path, 1280, 900)
    assert_quiet(seen, path)
    assert page.locator("table.matrix td.cell").count() == 200
    matrix = page.locator("table.matrix")
    box = matrix.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 1280
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    scroller = page.evaluate(
        "(() => { const s = document.querySelector('table.matrix').parentElement;"
        " return [s.scrollWidth, s.clientWidth]; })()"
    )
    assert scroller[0] <= scroller[1]  # no horizontal scrollbar on the matrix
    # labels wrap at `_`, `.` and `-` (a word wider than its column is the only one cut)
    assert page.locator("table.matrix thead th wbr").count() >= 30
    heads = page.eval_on_selector_all(
        "table.matrix thead th", "hs => hs.map(h => [h.scrollWidth, h.clientWidth])"
    )
    assert all(sw <= cw + 1 for sw, cw in heads), heads
    card_text = page.locator("#environment .card").first.inner_text()
    assert "ERROR" not in card_text and MODELS[2] in card_text
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "wide-desktop.png")
    page.close()

    page, seen = open_page(browser, path, 390, 844)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.evaluate("document.querySelector('table.matrix').parentElement.scrollLeft = 600")
    first = page.locator("table.matrix tbody th").first.bounding_box()
    assert 0 <= first["x"] < 40  # the device column stays in view while the matrix scrolls
    page.screenshot(path=SHOTS / "wide-phone.png")
    page.close()
