"""The PACS search panel and the SEG/SR layer in the real main window (offscreen Qt)."""

from __future__ import annotations

import pytest

from tests.desktop.conftest import _no_leaked_workers, window  # noqa: F401 - fixtures
from tests.pacs.conftest import CT3_DIR, LIVER_SEG, SR_EXAMPLE, RecordingSink, ct_subset


def test_search_retrieve_opens_while_downloading(window, qtbot, orthanc, tmp_path) -> None:  # noqa: F811
    from core.pacs import audit as A
    from core.pacs.cache import PacsCache
    from core.pacs.client import client_for_url
    from desktop.pacs_dialog import PacsSearchPanel

    sink = RecordingSink()
    opened: list[list[str]] = []

    def open_paths(paths: list[str]) -> None:
        opened.append(list(paths))
        window.open_paths(paths)

    panel = PacsSearchPanel(
        window.runner,
        lambda _name: client_for_url(orthanc.dicomweb, sink),
        ["test"],
        open_paths,
        PacsCache(tmp_path / "cache"),
    )
    window.add_panel(panel, title="PACS")
    panel.patient_name.setText("pancreas")
    panel.search_button.click()
    qtbot.waitUntil(lambda: panel.results.topLevelItemCount() == 1, timeout=10_000)
    study_item = panel.results.topLevelItem(0)
    assert study_item.text(2) == "Pancreas-CT-CB_001"
    panel.results.setCurrentItem(study_item)
    panel.retrieve_button.click()
    qtbot.waitUntil(lambda: panel.retrieve is not None and panel.retrieve.done, timeout=30_000)
    n = len(ct_subset())
    assert len(opened[0]) == 1  # the first arrival goes to the viewer alone, not with the batch
    assert len(opened) >= 2
    assert sum(len(batch) for batch in opened) == n
    qtbot.waitUntil(
        lambda: window.state.slice_count == n and window.state.loaded_count == n, timeout=30_000
    )
    assert f"Retrieved {n} instance(s)" in panel.status.text()
    assert [e[1] for e in sink.of(A.TRANSFERRED)] == [A.SUCCESS]
    assert len(sink.of(A.QUERY)) == 2  # the study search and the series list of the retrieve


def test_seg_overlay_and_sr_panel(window, qtbot, dicom_data) -> None:  # noqa: F811
    import numpy as np

    from desktop.seg_overlay import install

    if not LIVER_SEG.exists() or not SR_EXAMPLE.exists():
        pytest.skip("shared SEG/SR examples not found")
    panel = install(window)
    window.open_paths([str(CT3_DIR), str(LIVER_SEG), str(SR_EXAMPLE)])
    qtbot.waitUntil(lambda: len(panel.overlays) == 1 and len(panel.reports) == 1, timeout=15_000)
    sr = next(s for _p, _st, s in window.state.index.iter_series() if s.modality == "SR")
    window.controller.open_series(sr.series_instance_uid)
    qtbot.waitUntil(lambda: window.state.series is sr, timeout=15_000)
    assert "Tracking Identifier: primary tumor" in panel.text.toPlainText()
    assert "1 report(s) of this study" in panel.summary.text()
    ct = next(s for _p, _st, s in window.state.index.iter_series() if s.modality == "CT")
    window.controller.open_series(ct.series_instance_uid)
    qtbot.waitUntil(
        lambda: window.state.series is ct and window.state.loaded_count == 3, timeout=15_000
    )
    # the SR belongs to another patient's study: not shown beside this CT
    assert "primary tumor" not in panel.text.toPlainText()
    assert "0 report(s) of this study (1 of other studies not shown)" in panel.summary.text()
    layer = panel.layer
    with_masks = window.viewport.grab().toImage()
    assert layer.painted_masks == 1
    panel.show_masks.setChecked(False)
    without = window.viewport.grab().toImage()

    def rgb(img):  # type: ignore[no-untyped-def]
        img = img.convertToFormat(img.Format.Format_RGB888)
        w, h = img.width(), img.height()
        arr = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
        return arr.reshape(h, img.bytesPerLine())[:, : w * 3].reshape(h, w, 3).astype(int)

    a, b = rgb(with_masks), rgb(without)
    tinted = np.abs(a - b).sum(axis=2) > 30
    assert tinted.mean() > 0.02  # the liver covers a visible part of the image
    red_shift = (a[..., 0] - a[..., 2])[tinted].mean() - (b[..., 0] - b[..., 2])[tinted].mean()
    assert red_shift > 10  # the liver's reddish colour, not just any change


def _panel(main, settings, sink):  # type: ignore[no-untyped-def]
    from desktop.pacs_dialog import PacsSearchPanel, client_factory, configured_nodes

    nodes, problem = configured_nodes(settings)
    panel = PacsSearchPanel(
        main.runner, client_factory(nodes, sink), [n.name for n in nodes], main.open_paths, None
    )
    panel.status.setText(problem)
    return panel


def test_panel_uses_configured_nodes(window, qtbot, orthanc) -> None:  # noqa: F811
    from core.config import PacsNode, Settings

    sink = RecordingSink()
    settings = Settings(pacs=[PacsNode(name="local-orthanc", url=orthanc.dicomweb)])
    panel = _panel(window, settings, sink)
    assert panel.node.currentText() == "local-orthanc"
    panel.patient_id.setText("99000")
    panel.search_button.click()
    qtbot.waitUntil(lambda: panel.results.topLevelItemCount() == 1, timeout=10_000)
    item = panel.results.topLevelItem(0)
    item.setExpanded(True)  # lists the study's series
    qtbot.waitUntil(lambda: item.childCount() == 1, timeout=10_000)
    assert item.child(0).text(5) == "3"
    assert [e[3]["node"] for e in sink.of("Query")] == ["local-orthanc", "local-orthanc"]


def test_panel_without_nodes_says_what_to_do(window) -> None:  # noqa: F811
    from core.config import Settings

    panel = _panel(window, Settings(), RecordingSink())
    assert "No PACS configured" in panel.status.text()
    assert panel.run_search() is None
