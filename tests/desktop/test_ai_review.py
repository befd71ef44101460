"""Series review in the real window: the zoo brain model over the real 24-slice MR series,
per-image progress, the findings list against the result, marks on the slice slider, a finding
jumps the viewport (with its heatmap), guard flags in the amber banner, a rejection with its
reason shown again after a re-run, comments listed; one screenshot of the panel."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

from core.inference.heatmap import DEFAULT_FLOOR
from core.results.findings import ood_images, positive_findings
from desktop.slider_marks import FINDING_COLOUR, OOD_COLOUR
from tests.desktop.helpers import open_for_ai

MR_PARTS = ("plotly__dash-vtk", "demos", "data", "mri_brain")
CR = Path(__file__).resolve().parents[2] / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
TIMEOUT_MS = 120_000
SHOT = Path(os.environ.get("DOCTORAI_REVIEW_SHOT", "/tmp/doctorai_ai_review.png"))


def _rgb(widget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(widget.grab().toImage().Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes())
    return (
        arr.reshape(img.height(), img.bytesPerLine())[:, : img.width() * 3]
        .reshape(img.height(), img.width(), 3)
        .copy()
    )


def _run_series(qtbot, win, panel, progress: list[tuple[str, int, int]] | None = None):
    if progress is not None:
        panel.queue.changed.connect(
            lambda: progress.append(
                (panel.queue.rows[-1].state, panel.queue.rows[-1].done, panel.queue.rows[-1].total)
            )
        )
    row = panel.run_series()
    qtbot.waitUntil(lambda: row.finished, timeout=TIMEOUT_MS)
    assert row.state == "done", row.message
    return row


def _slices_of(win, result) -> list[int]:
    """The viewport slice of each of the result's inputs."""
    position = {(s.instance.sop_instance_uid, s.frame): i for i, s in enumerate(win.state.slices)}
    return [position[(r.sop_instance_uid, r.frame)] for r in result.provenance.inputs]


def _expected_slices(win, result) -> list[int]:
    at = _slices_of(win, result)
    return sorted(at[f.index] for f in positive_findings(result.to_json()))


def test_series_run_lists_findings_marks_the_slider_and_jumps(
    qtbot, window, dicom_data: Path
) -> None:
    win, panel = window, window.ai
    open_for_ai(qtbot, win, dicom_data.joinpath(*MR_PARTS))
    panel.select_model("brain-tumour-mri")
    n = win.state.slice_count
    assert n == 24

    progress: list[tuple[str, int, int]] = []
    row = _run_series(qtbot, win, panel, progress)
    running = sorted({done for state, done, _t in progress if state == "running"})
    # per-image progress: the first run of a model goes in small batches (not 0 then 24)
    assert row.batch < n
    assert len(running) >= 4, progress
    assert running[-1] == n
    assert all(total == n for _s, _d, total in progress)

    result = row.result
    expected = _expected_slices(win, result)
    assert expected, "the phantom-trained brain model flags slices of the real MR"
    assert panel.findings.slices() == expected  # sorted by slice
    assert panel.findings_label.text().startswith(f"{len(expected)} of {n} slices over")
    first = panel.findings.item(0).text()
    k = next(f.index for f in positive_findings(result.to_json()))
    assert f"{result.scores(k)['tumour']:.3f}" in " ".join(
        panel.findings.item(i).text() for i in range(panel.findings.count())
    )
    assert first.startswith(f"Slice {expected[0] + 1} · tumour")

    # marks on the window's slice slider at those slices, drawn in the slider's own pixels:
    # amber where the OOD guard flagged the image (doubt wins over a finding), red elsewhere
    marks = panel.slider_marks
    at = _slices_of(win, result)
    ood_slices = {at[k] for k in ood_images(result.to_json())}
    assert ood_slices, "the phantom-trained brain model flags the real MR as out of distribution"
    assert set(marks.marks) == set(expected) | ood_slices
    assert {i for i, c in marks.marks.items() if c == FINDING_COLOUR} == set(expected) - ood_slices
    assert {i for i, c in marks.marks.items() if c == OOD_COLOUR} == ood_slices
    win.slider.repaint()
    pixels = _rgb(win.slider).astype(int)
    for index, rect in marks.mark_rects().items():
        colour = marks.marks[index]
        x, y = rect.center().x(), rect.center().y()
        want = [colour.red(), colour.green(), colour.blue()]
        assert np.abs(pixels[y, x] - want).max() <= 40, (index, pixels[y, x])

    # Enter on a finding, then a click on another: the viewport goes there with its heatmap
    target = expected[-1]
    panel.heat_toggle.setChecked(False)
    win.state.set_slice(0 if target != 0 else n - 1)
    panel.findings.setCurrentRow(len(expected) - 1)
    panel.findings.setFocus()
    qtbot.keyClick(panel.findings, Qt.Key.Key_Return)
    assert win.state.viewport.slice_index == target
    assert panel.heat_toggle.isChecked()
    qtbot.waitUntil(lambda: win.viewport.heatmap_painted == target, timeout=5000)
    assert panel.current_result()[1] == result.provenance.inputs.index(
        next(
            r
            for r in result.provenance.inputs
            if r.sop_instance_uid == win.state.slices[target].instance.sop_instance_uid
        )
    )
    item = panel.findings.item(0)
    panel.findings.scrollToItem(item)
    rect = panel.findings.visualItemRect(item)
    qtbot.mouseClick(panel.findings.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert win.state.viewport.slice_index == expected[0]
    # moving among the run's slices keeps the list (it is the run's, not the slice's)
    assert panel.findings.slices() == expected

    # the colour bar next to the heatmap controls, with its values
    assert panel.colour_bar.isVisible()
    assert panel.colour_bar.labels() == ["0", "0.25", "0.5", "0.75", "1"]
    assert panel.floor.value() == DEFAULT_FLOOR

    # the run's own OOD flags (the phantom-trained model on a real MR): marked per finding
    # and counted in the amber banner, in slices as the slider and the list count them
    flagged = ood_images(result.to_json())
    assert not panel.guard_banner.isHidden()
    (ood,) = [g for g in result.guards if g.kind == "ood"]
    banner = panel.guard_banner.text()
    first_ood = min(flagged)
    assert ood.message.startswith(f"{len(flagged)} of {n} images are unlike")
    assert f"{len(flagged)} of {n} slices are unlike the training data" in banner
    assert f"slice {at[first_ood] + 1} (" in banner
    assert "image " not in banner
    assert " images " not in banner
    marked = {
        panel.findings.item(i).data(Qt.ItemDataRole.UserRole)
        for i in range(panel.findings.count())
        if "out of distribution" in panel.findings.item(i).text()
    }
    slice_of = dict(zip(range(n), _slices_of(win, result), strict=True))
    assert marked == {slice_of[k] for k in flagged if slice_of[k] in expected}

    # the screenshot of the panel after a series run with findings (looked at by hand)
    win.ai_dock.raise_()
    SHOT.parent.mkdir(parents=True, exist_ok=True)
    assert win.grab().save(str(SHOT))
    assert panel.grab().save(str(SHOT.with_name(SHOT.stem + "_panel.png")))


def test_reject_with_reason_is_shown_after_a_rerun_and_comments_are_listed(
    qtbot, window, dicom_data: Path
) -> None:
    win, panel = window, window.ai
    open_for_ai(qtbot, win, dicom_data.joinpath(*MR_PARTS))
    panel.select_model("brain-tumour-mri")
    row = _run_series(qtbot, win, panel)
    qtbot.waitUntil(lambda: panel.verdict.text() == "Not reviewed yet", timeout=TIMEOUT_MS)

    panel.comment.setText("the hot spot is the scalp")
    panel.reject_reason.setCurrentIndex(panel.reject_reason.findData("false-positive"))
    qtbot.mouseClick(panel.reject_button, Qt.MouseButton.LeftButton)
    # recorded in a job, then the history read again in another
    qtbot.waitUntil(lambda: panel.verdict.text().startswith("Decision:"), timeout=TIMEOUT_MS)
    rid = row.result.result_id
    (record,) = [r for r in panel.results.records if r.result_id == rid]
    assert (record.decision, record.reason, record.comment) == (
        "rejected",
        "false-positive",
        "the hot spot is the scalp",
    )
    assert panel.verdict.text().startswith("Decision: rejected (False positive) by")
    assert panel.reject_reason.currentIndex() == 0  # ready for the next one
    assert panel.comment.text() == ""

    panel.comment.setText("discussed with neuroradiology")
    qtbot.mouseClick(panel.comment_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.history.count() == 2, timeout=TIMEOUT_MS)
    assert panel.verdict.text().endswith("comment saved")
    lines = panel.history.lines()
    assert len(lines) == 2
    assert "rejected: False positive — “the hot spot is the scalp”" in lines[0]
    assert "comment — “discussed with neuroradiology”" in lines[1]
    assert not panel.history.isHidden()

    # the same model on the same images again: the earlier decision, not a blank verdict
    again = _run_series(qtbot, win, panel)
    assert again.result.result_id != rid
    qtbot.waitUntil(lambda: "Earlier decision" in panel.verdict.text(), timeout=TIMEOUT_MS)
    assert panel.verdict.text().startswith(
        "Earlier decision on the same images: rejected (False positive) by"
    )
    assert all("(earlier run, same images)" in line for line in panel.history.lines())
    assert panel.current_verdict() is None  # the new run itself is not decided yet


def test_population_flag_of_the_adult_cr_is_in_the_amber_banner(qtbot, window) -> None:
    """The paediatric chest model on the shared adult CR: the run's population flag (from the
    header, by the guard) is said in the result area, not only in the JSON."""
    win, panel = window, window.ai
    open_for_ai(qtbot, win, CR)
    row = panel.run_current_image()
    qtbot.waitUntil(lambda: row.finished, timeout=TIMEOUT_MS)
    assert row.state == "done", row.message
    population = [g for g in row.result.guards if g.kind == "population"]
    assert population, "the adult CR is outside the paediatric model's intended population"
    assert not panel.guard_banner.isHidden()
    for flag in population:
        assert flag.message in panel.guard_banner.text()
    # one image: no findings list and no slider mark, the banner keeps the guard's own words
    assert panel.findings_box.isHidden()
    assert panel.slider_marks.marks == {}
    assert "the image is unlike" in panel.guard_banner.text()


def test_images_the_viewer_has_not_decoded_count_one_by_one(
    qtbot, window, dicom_data: Path
) -> None:
    """A run started while the series is still loading decodes in its job: progress moves
    with every image decoded, then with every batch the model finished."""
    from desktop.inference_jobs import progress_batch

    win, panel = window, window.ai
    open_for_ai(qtbot, win, dicom_data.joinpath(*MR_PARTS))
    n = win.state.slice_count
    seen: list[tuple[str, int]] = []
    panel.queue.changed.connect(
        lambda: seen.append((panel.queue.rows[-1].state, panel.queue.rows[-1].done))
    )
    row = panel.queue.submit(
        panel.manager,
        "brain-tumour-mri",
        win.state.series.series_instance_uid,
        list(range(n)),
        list(win.state.slices),
        [None] * n,  # nothing decoded yet
        f"series ({n} images)",
    )
    qtbot.waitUntil(lambda: row.finished, timeout=TIMEOUT_MS)
    assert row.state == "done", row.message
    decoded = [done for state, done in seen if state == "decoding"]
    assert set(range(1, n + 1)) <= set(decoded)  # every image, one by one
    assert decoded == sorted(decoded)
    # batches follow the model's measured speed: a fast model keeps full batches, a slow one
    # (here 300 ms per image) goes image by image, an unmeasured one in batches of 4
    assert panel.queue.speed["brain-tumour-mri"] > 0
    assert progress_batch(2.0, 16) == 16
    assert progress_batch(300.0, 16) == 1
    assert progress_batch(None, 16) == 4


def test_doubt_wins_on_the_slider_and_the_banner_counts_slices() -> None:
    """Unit rules behind the window: an OOD image is marked amber even when it is a finding;
    the guard's "image k" (k-th input) is reworded as the slice the viewer shows."""
    from core.results.findings import Finding
    from desktop.ai_review import guard_lines, slider_marks

    listed = [(5, Finding(0, "tumour", 0.99, 0.9)), (7, Finding(2, "tumour", 0.95, 0.9))]
    marks = slider_marks(listed, {0: "ood", 1: "ood"}, [5, 6, 7])
    assert marks == {5: OOD_COLOUR, 6: OOD_COLOUR, 7: FINDING_COLOUR}
    result = {
        "decisions": ["tumour", "no_tumour", "tumour"],
        "guards": [
            {
                "kind": "ood",
                "message": "2 of 3 images are unlike the training data of m: image 1 (40.0), "
                "image 3 (41.0) (OOD scores > threshold 30.2)",
                "images": [0, 2],
            }
        ],
    }
    (line,) = guard_lines(result, [5, 6, None])
    assert line == (
        "2 of 3 slices are unlike the training data of m: slice 6 (40.0), image 3 (41.0) "
        "(OOD scores > threshold 30.2)"
    )
    single = {"decisions": ["tumour"], "guards": [{"kind": "ood", "message": "image 1 is"}]}
    assert guard_lines(single, [4]) == ["image 1 is"]  # one image: the guard's own words
