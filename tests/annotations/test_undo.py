"""Undo/redo over a viewer session, Qt-free: create, move, edit, delete and back again, a
failing step leaves the stacks as they were, other authors' annotations are read-only; which
annotations an image (or a rebuilt reformat plane) shows."""

from __future__ import annotations

import numpy as np
import pytest

from core.annotations.model import AcquiredImage, Annotation, Kind, PlaneImage
from core.annotations.session import AnnotationSession, ReadOnlyAnnotation, SessionOnly
from core.annotations.undo import Create, History, Update
from core.viewer.reformat import Plane

STUDY, SERIES = "1.2.826.0.1.1", "1.2.826.0.1.2"
IMAGE = AcquiredImage("1.2.3.4", 0, (0.7, 0.7))


def _length(**kw) -> Annotation:
    return Annotation(Kind.LENGTH, [(10, 10), (20, 30)], IMAGE, STUDY, SERIES, **kw)


def _session(author: str = "dr-a", loaded=()) -> tuple[AnnotationSession, list[str]]:
    seen: list[str] = []
    session = AnnotationSession(
        SessionOnly(author),
        author,
        loaded,
        on_change=lambda what, _a, deleted: seen.append(what + (" -> gone" if deleted else "")),
    )
    return session, seen


def test_create_move_edit_delete_undo_all_then_redo_all() -> None:
    s, seen = _session()
    a = s.create(_length())
    assert a.author == "dr-a"
    s.move(a.uid, 5, -2)
    s.edit(a.uid, text="aorta")
    s.move_label(a.uid, (0.0, 50.0))
    s.delete(a.uid)
    assert s.all() == []
    states = []
    while s.history.can_undo:
        s.undo()
        states.append([(x.points, x.text, x.label_pos) for x in s.all()])
    assert states == [
        [(((15, 8), (25, 28)), "aorta", (0.0, 50.0))],  # undo delete
        [(((15, 8), (25, 28)), "aorta", None)],  # undo label move
        [(((15, 8), (25, 28)), "", None)],  # undo edit
        [(((10, 10), (20, 30)), "", None)],  # undo move
        [],  # undo create
    ]
    for _ in range(4):  # create, move, edit, label move
        s.redo()
    (back,) = s.all()
    assert back.uid == a.uid
    assert (back.points, back.text, back.label_pos) == (((15, 8), (25, 28)), "aorta", (0, 50))
    assert s.history.redo_name == "delete"
    s.redo()
    assert s.all() == []
    assert not s.history.can_redo
    assert seen[:5] == ["create", "move", "edit", "move label", "delete -> gone"]
    assert seen[5:10] == [
        "undo delete",
        "undo move label",
        "undo edit",
        "undo move",
        "undo create -> gone",
    ]
    assert seen[-1] == "redo delete -> gone"


def test_a_new_step_clears_redo_and_depth_is_bounded() -> None:
    s, _ = _session()
    a = s.create(_length())
    s.move(a.uid, 1, 1)
    s.undo()
    assert s.history.can_redo
    s.edit(a.uid, text="new")
    assert not s.history.can_redo
    assert s.history.undo_name == "edit"
    h = History(SessionOnly("dr-a"), depth=3)
    b = h.run(Create(_length()))
    for i in range(5):
        b = h.run(Update(b, b.moved(i, 0), "move"))
    undone = 0
    while h.undo() is not None:
        undone += 1
    assert undone == 3


def test_a_failing_step_changes_nothing() -> None:
    sink = SessionOnly("dr-a")
    s = AnnotationSession(sink, "dr-a")
    a = s.create(_length())
    sink.delete(a.uid)  # gone behind the session's back (another window, say)
    with pytest.raises(KeyError):
        s.move(a.uid, 1, 1)
    assert s.history.undo_name == "create"
    assert not s.history.can_redo


def test_other_authors_annotations_are_read_only() -> None:
    theirs = _length(author="dr-b")
    s, _ = _session(loaded=[theirs])
    assert s.on(IMAGE) == [theirs]
    assert not s.editable(theirs)
    for change in (
        lambda: s.move(theirs.uid, 1, 1),
        lambda: s.edit(theirs.uid, text="x"),
        lambda: s.delete(theirs.uid),
    ):
        with pytest.raises(ReadOnlyAnnotation, match="drawn by 'dr-b'"):
            change()
    assert not s.history.can_undo


def test_annotations_are_found_by_the_image_they_were_drawn_on() -> None:
    s, _ = _session()
    here = s.create(_length())
    other_frame = s.create(
        Annotation(Kind.PROBE, [(1, 1)], AcquiredImage("1.2.3.4", 1), STUDY, SERIES)
    )
    assert s.on(IMAGE) == [here]
    assert s.on(AcquiredImage("1.2.3.4", 1)) == [other_frame]


def test_a_plane_annotation_is_shown_on_the_same_plane_rebuilt_with_another_grid() -> None:
    u, v = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])
    drawn_on = PlaneImage.from_plane(Plane(np.array([0.0, 5.0, 0.0]), u, v, 64, 64, 0.8))
    s, _ = _session()
    a = s.create(Annotation(Kind.LENGTH, [(10.5, 10.5), (20.5, 30.5)], drawn_on, STUDY, SERIES))
    # the same coronal plane (y = 5 mm), anchored 7 mm to the side, finer pixels
    rebuilt = PlaneImage.from_plane(Plane(np.array([7.0, 5.0, 3.0]), u, v, 80, 80, 0.5))
    parallel = PlaneImage.from_plane(Plane(np.array([0.0, 6.0, 0.0]), u, v, 64, 64, 0.8))
    axial = PlaneImage.from_plane(
        Plane(np.array([0.0, 5.0, 0.0]), u, np.array([0.0, 1.0, 0.0]), 64, 64, 0.8)
    )
    assert s.on(rebuilt) == [a]
    assert s.on(parallel) == []
    assert s.on(axial) == []
    mapped = drawn_on.map_points(a.points, rebuilt)
    for p, q in zip(a.points, mapped, strict=True):
        assert np.allclose(drawn_on.to_patient(p), rebuilt.to_patient(q))
