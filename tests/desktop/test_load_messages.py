"""The loading threads send the GUI thread few messages: slices in batches (the first alone),
the first slice painted before the rest loads, old frames freed off the GUI thread."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.imaging.header import read_header
from core.imaging.model import Frame, Instance, Series, SliceRef
from core.imaging.volume import SeriesLoadError
from core.viewer.release import release_later
from core.viewer.state import ViewerState
from desktop.controller import batched, slices_job
from desktop.workers import JobContext

CT = ("pyvista__vtk-data", "Data", "DICOM_Stack")


def _slow(n: int, every: float, fail_at: int | None = None) -> Iterator[int]:
    for i in range(n):
        time.sleep(every)
        if i == fail_at:
            raise ValueError("slice broke")
        yield i


def _drain(batches: Iterator[list[int]], into: list[int]) -> None:
    for b in batches:
        into.extend(b)


def test_batched_first_alone_then_by_interval() -> None:
    batches = list(batched(_slow(40, 0.002), interval=0.02))
    assert batches[0] == [0]
    assert [i for b in batches for i in b] == list(range(40))  # nothing lost, in order
    assert len(batches) < 15  # not one message per item
    # items before an error reach the consumer before the error does
    got: list[int] = []
    with pytest.raises(ValueError, match="slice broke"):
        _drain(batched(_slow(10, 0.001, fail_at=7), interval=10.0), got)
    assert got == list(range(7))


@pytest.fixture
def ct_refs(dicom_data: Path) -> list[SliceRef]:
    folder = dicom_data.joinpath(*CT)
    files = sorted(folder.glob("*.dcm"))[:12]
    if not files:
        pytest.skip(f"the shared CT is not at '{folder}'")
    return [SliceRef(read_header(str(f)).instance, 0) for f in files]


def _ctx() -> JobContext:
    return JobContext(threading.Event(), lambda _v: None)


def test_the_first_slice_is_painted_before_the_rest_loads(ct_refs: list[SliceRef]) -> None:
    shown = threading.Event()
    order = [6, 5, 7, 4, 8, 3, 9, 2, 10, 1, 11, 0]
    job = slices_job(_ctx(), ct_refs, order, 2, shown)
    first = next(job)
    assert [i for i, _f in first] == [6]
    released: list[float] = []

    def paint() -> None:  # the viewer paints 50 ms later
        time.sleep(0.05)
        released.append(time.monotonic())
        shown.set()

    threading.Thread(target=paint).start()
    rest = [i for b in job for i, _f in b]
    assert time.monotonic() >= released[0]  # the rest came after the paint
    assert sorted(rest) == sorted(order[1:])
    # nobody paints (a hidden window): the rest loads anyway, after a short wait
    start = time.monotonic()
    assert sum(len(b) for b in slices_job(_ctx(), ct_refs, order, 2, threading.Event())) == 12
    assert time.monotonic() - start < 5


def test_failed_slices_of_both_stages_are_reported_together(ct_refs: list[SliceRef]) -> None:
    broken = [SliceRef(Instance("/nonexistent/a.dcm", "1.2.3"), 0), *ct_refs[:3]]
    broken.append(SliceRef(Instance("/nonexistent/b.dcm", "1.2.4"), 0))
    shown = threading.Event()
    shown.set()
    delivered: list[int] = []
    with pytest.raises(SeriesLoadError) as err:
        _drain(
            ([i for i, _f in b] for b in slices_job(_ctx(), broken, [0, 1, 2, 3, 4], 1, shown)),
            delivered,
        )
    assert sorted(delivered) == [1, 2, 3]
    assert sorted(err.value.indices) == [0, 4]
    assert {e.path for e in err.value.errors} == {"/nonexistent/a.dcm", "/nonexistent/b.dcm"}


def test_old_frames_are_freed_off_the_calling_thread() -> None:
    freed_on: list[int] = []
    series = [
        Series(uid, instances=[Instance(f"{uid}{i}", f"{uid}.{i}") for i in range(40)])
        for uid in ("a", "b")
    ]
    st = ViewerState()
    st.set_series(series[0])
    for i in range(40):
        values = np.zeros((64, 64), np.float32)
        weakref.finalize(values, lambda: freed_on.append(threading.get_ident()))
        st.set_frame(i, Frame(values=values, windows=[(0.0, 10.0)]))
        del values
    st.set_series(series[1])
    deadline = time.monotonic() + 5
    while len(freed_on) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(freed_on) == 40
    assert threading.get_ident() not in freed_on
    small = [np.zeros(2)]
    release_later(small)  # a short list is simply left to the caller
    assert len(small) == 1


def test_indexing_reports_little_and_waits_for_the_first_paint(dicom_data: Path) -> None:
    from core.imaging.progressive import FirstImage
    from desktop.controller import progressive_index_job

    folder = dicom_data.joinpath(*CT)
    if not folder.is_dir():
        pytest.skip(f"the shared CT is not at '{folder}'")
    reports: list[tuple[float, object]] = []

    def report(value: object) -> None:
        reports.append((time.monotonic(), value))
        if isinstance(value, FirstImage):  # the viewer paints it 50 ms later
            threading.Timer(0.05, value.shown.set).start()

    ctx = JobContext(threading.Event(), report)
    index = progressive_index_job(ctx, [str(folder)], 1, True)
    assert sum(len(s.instances) for _p, _st, s in index.iter_series()) == 134
    first_at, first = reports[0]
    assert isinstance(first, FirstImage)
    progress = [(t, v) for t, v in reports[1:] if isinstance(v, tuple)]
    assert progress[0][0] >= first_at + 0.05  # no header was read before the paint
    assert progress[-1][1] == (134, 134)  # the end is always reported
    assert len(progress) < 20  # not one message per file
