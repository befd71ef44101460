"""The annotation use cases on a real encrypted profile and a real CT: every tool stored as it
is made and back after the profile is reopened, each change audited naming user, patient,
study, series, image and annotation, deletes kept for the audit, permissions and authorship
enforced, undo/redo through the store, writes from several threads at once."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from core.annotations.model import (
    AcquiredImage,
    Annotation,
    AnnotationError,
    Kind,
    PlaneImage,
    StaleAnnotation,
)
from core.annotations.store import NotFound
from core.app import annotations as app
from core.app.workstation import Workstation
from core.audit.export import to_dicom_xml
from core.audit.vocabulary import EventType
from core.security.users import PermissionDenied
from core.store.schema import annotation_rows
from tests.annotations.conftest import PASSWORD, Shown, add_users, show_ct


def _image(shown: Shown, n: int = 0) -> AcquiredImage:
    inst = shown.instances[n]
    return AcquiredImage(inst.sop_instance_uid, 0, inst.pixel_spacing)


def _every_tool(shown: Shown) -> list[Annotation]:
    img = _image(shown)
    pts = {
        Kind.LENGTH: [(10, 10), (50, 80)],
        Kind.ANGLE: [(10, 60), (40, 40), (80, 70)],
        Kind.COBB: [(100, 10), (95, 200), (300, 10), (310, 200)],
        Kind.ELLIPSE: [(200, 200), (240, 260)],
        Kind.FREEHAND: [(300, 300), (300, 340), (340, 330), (330, 290)],
        Kind.RECTANGLE: [(120, 120), (160, 180)],
        Kind.PROBE: [(256.5, 256.5)],
        Kind.ARROW: [(400, 400), (380, 380)],
        Kind.TEXT: [(30, 400)],
    }
    made = [
        Annotation(kind, p, img, shown.study_uid, shown.series_uid, text="")
        for kind, p in pts.items()
        if kind is not Kind.TEXT
    ]
    made.append(
        Annotation(Kind.TEXT, pts[Kind.TEXT], img, shown.study_uid, shown.series_uid, text="L")
    )
    plane = PlaneImage((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.8, 0.8), "1.2.3")
    made.append(Annotation(Kind.LENGTH, [(1, 1), (5, 5)], plane, shown.study_uid, shown.series_uid))
    return made


def _events(ws: Workstation, action: str) -> list:
    return [
        e
        for e in ws.audit.iter_events(event_type=EventType.INSTANCES_ACCESSED)
        if e.details.get("action") == action
    ]


def test_every_tool_is_stored_audited_and_back_after_reopening(
    ws: Workstation, shown: Shown, db_path: Path
) -> None:
    made = [app.create_annotation(ws, a) for a in _every_tool(shown)]
    assert {a.author for a in made} == {"dr-a"}
    assert all(a.created_at and a.created_at == a.modified_at for a in made)
    created = _events(ws, "annotation-create")
    assert len(created) == len(made)
    first = created[0]
    assert first.user == "dr-a"
    assert first.details["event_action"] == "C"
    kinds = {o["kind"]: o["id"] for o in first.objects}
    assert kinds["patient"] == shown.patient_id
    assert kinds["study"] == shown.study_uid
    assert kinds["series"] == shown.series_uid
    assert kinds["instance"] == made[0].sop_instance_uid
    assert kinds["annotation"] == made[0].uid
    ws.close()

    reopened = Workstation.open(db_path)
    try:
        reopened.session.login("dr-b", PASSWORD)  # another radiologist sees them, read-only
        back = app.list_annotations(reopened, shown.study_uid, shown.series_uid)
        assert sorted(back, key=lambda a: a.uid) == sorted(made, key=lambda a: a.uid)
        session = app.open_session(reopened, shown.study_uid)
        assert len(session.on(_image(shown))) == len(made) - 1  # the plane's is not on it
        assert not any(session.editable(a) for a in session.all())
        assert reopened.audit.verify().ok
    finally:
        reopened.close()


def test_edit_move_delete_restore_are_audited_and_deletes_kept(
    ws: Workstation, shown: Shown
) -> None:
    img = _image(shown)
    a = app.create_annotation(
        ws, Annotation(Kind.RECTANGLE, [(1, 1), (9, 9)], img, shown.study_uid, shown.series_uid)
    )
    moved = app.update_annotation(ws, a.moved(2, 3), "move")
    assert moved.revision == 1
    assert moved.points == ((3, 4), (11, 12))
    assert moved.created_at == a.created_at
    assert moved.modified_at > a.modified_at
    noted = app.update_annotation(ws, moved.edited(text="cyst", label_pos=(0, 40)))
    assert (noted.revision, noted.text, noted.label_pos) == (2, "cyst", (0, 40))
    app.delete_annotation(ws, a.uid)
    assert app.list_annotations(ws, shown.study_uid) == []
    with ws.db.engine.connect() as conn:
        row = conn.execute(select(annotation_rows).where(annotation_rows.c.uid == a.uid)).one()
    assert row.deleted == 1  # kept for the audit
    assert row.label == "cyst"
    restored = app.restore_annotation(ws, a.uid)
    assert app.list_annotations(ws, shown.study_uid) == [
        replace(noted, modified_at=restored.modified_at)
    ]
    updates = _events(ws, "annotation-update")
    assert [e.details["change"] for e in updates] == ["move", "edit"]
    assert [e.details["event_action"] for e in updates] == ["U", "U"]
    assert _events(ws, "annotation-delete")[0].details["event_action"] == "D"
    assert len(_events(ws, "annotation-restore")) == 1
    # the DICOM audit message export carries each change's own action code, not "R"
    xml = to_dicom_xml(ws.audit.iter_events(event_type=EventType.INSTANCES_ACCESSED))
    codes = [m.find("EventIdentification").get("EventActionCode") for m in ET.fromstring(xml)]
    assert codes.count("C") >= 1
    assert codes.count("U") == 3  # move, edit, restore
    assert codes.count("D") == 1
    with pytest.raises(NotFound, match="not deleted"):
        app.restore_annotation(ws, a.uid)
    with pytest.raises(AnnotationError, match="is stored already"):
        app.create_annotation(ws, noted)
    with pytest.raises(AnnotationError, match="image cannot be changed"):
        app.update_annotation(ws, replace(noted, image=_image(shown, 1)))


def test_authors_and_permissions_are_enforced(ws: Workstation, shown: Shown) -> None:
    img = _image(shown)
    mine = app.create_annotation(
        ws, Annotation(Kind.PROBE, [(5, 5)], img, shown.study_uid, shown.series_uid)
    )
    ws.session.logout()
    ws.session.login("dr-b", PASSWORD)
    with pytest.raises(PermissionDenied, match="drawn by 'dr-a'"):
        app.update_annotation(ws, mine.moved(1, 1))
    with pytest.raises(PermissionDenied, match="drawn by 'dr-a'"):
        app.delete_annotation(ws, mine.uid)
    ws.session.logout()
    ws.session.login("tech", PASSWORD)
    assert app.list_annotations(ws, shown.study_uid) == [mine]  # may view
    with pytest.raises(PermissionDenied):
        app.create_annotation(ws, mine)
    with pytest.raises(PermissionDenied):
        app.mark_key_image(ws, shown.study_uid, shown.series_uid, img)
    assert len(_events(ws, "annotation-create")) == 1  # nothing else was written


def test_a_study_not_recorded_is_refused_with_the_reason(ws: Workstation) -> None:
    img = AcquiredImage("1.2.3.4.5", 0, None)
    with pytest.raises(app.StudyNotRecorded, match=r"study '9\.9\.9' is not in the local study"):
        app.create_annotation(ws, Annotation(Kind.PROBE, [(1, 1)], img, "9.9.9", "9.9.8"))
    assert ws.audit.verify().ok


def test_undo_and_redo_go_through_the_store(ws: Workstation, shown: Shown) -> None:
    session = app.open_session(ws, shown.study_uid)
    a = session.create(
        Annotation(Kind.LENGTH, [(1, 1), (4, 5)], _image(shown), shown.study_uid, shown.series_uid)
    )
    session.move(a.uid, 10, 0)
    session.undo()  # the move
    assert app.list_annotations(ws, shown.study_uid)[0].points == a.points
    session.undo()  # the create: deleted in the store
    assert app.list_annotations(ws, shown.study_uid) == []
    session.redo()  # restored, same UID
    assert [x.uid for x in app.list_annotations(ws, shown.study_uid)] == [a.uid]
    session.redo()
    assert app.list_annotations(ws, shown.study_uid)[0].points == ((11, 1), (14, 5))
    actions = [
        e.details["action"]
        for e in ws.audit.iter_events(event_type=EventType.INSTANCES_ACCESSED)
        if str(e.details.get("action", "")).startswith("annotation-")
    ]
    assert actions == [
        "annotation-create",
        "annotation-update",
        "annotation-update",
        "annotation-delete",
        "annotation-restore",
        "annotation-update",
    ]


def test_writes_from_worker_threads_all_land(ws: Workstation, shown: Shown) -> None:
    img = _image(shown)
    errors: list[BaseException] = []
    made: list[Annotation] = []
    lock = threading.Lock()

    def draw(n: int) -> None:
        try:
            for i in range(10):
                a = app.create_annotation(
                    ws,
                    Annotation(Kind.PROBE, [(n, i)], img, shown.study_uid, shown.series_uid),
                )
                with lock:
                    made.append(a)
        except BaseException as exc:  # noqa: BLE001 - any failure in a thread is reported below
            errors.append(exc)

    threads = [threading.Thread(target=draw, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stored = app.list_annotations(ws, shown.study_uid)
    assert {a.uid for a in stored} == {a.uid for a in made}
    assert len(stored) == 40
    assert ws.audit.verify().ok


def test_key_images_are_marked_listed_and_unmarked(ws: Workstation, shown: Shown) -> None:
    img = _image(shown, 1)
    k = app.mark_key_image(ws, shown.study_uid, shown.series_uid, img)
    again = app.mark_key_image(ws, shown.study_uid, shown.series_uid, img)
    assert again == k  # no second mark, no second event
    report = app.mark_key_image(ws, shown.study_uid, shown.series_uid, img, app.Purpose.FOR_REPORT)
    assert [x.purpose.value for x in app.list_key_images(ws, shown.study_uid)] == [
        "Of Interest",
        "For Report",
    ]
    marks = _events(ws, "key-image-mark")
    assert len(marks) == 2
    assert {o["kind"]: o["id"] for o in marks[0].objects}["instance"] == img.sop_instance_uid
    ws.session.logout()
    ws.session.login("dr-b", PASSWORD)
    with pytest.raises(PermissionDenied, match="marked by 'dr-a'"):
        app.unmark_key_image(ws, k.uid)
    ws.session.logout()
    ws.session.login("dr-a", PASSWORD)
    app.unmark_key_image(ws, k.uid)
    assert app.list_key_images(ws, shown.study_uid) == [report]
    with pytest.raises(NotFound):
        app.unmark_key_image(ws, k.uid)
    assert _events(ws, "key-image-unmark")[0].details["event_action"] == "D"
    again = app.mark_key_image(ws, shown.study_uid, shown.series_uid, img)
    assert again.uid != k.uid  # marked anew after the unmark


def test_a_cli_operator_may_list_but_must_sign_in_to_draw(db_path: Path) -> None:
    ws = Workstation.open_for_cli(db_path)
    try:
        add_users(ws)
        shown = show_ct(ws)
        assert app.list_annotations(ws, shown.study_uid) == []
        with pytest.raises(PermissionDenied, match="needs an account"):
            app.create_annotation(
                ws,
                Annotation(Kind.PROBE, [(1, 1)], _image(shown), shown.study_uid, shown.series_uid),
            )
    finally:
        ws.close()


def test_the_annotations_of_one_image_are_read_without_the_series(
    ws: Workstation, shown: Shown
) -> None:
    first, second = _image(shown, 0), _image(shown, 1)
    other_frame = AcquiredImage(first.sop_instance_uid, 1, first.pixel_spacing)
    made = {
        name: app.create_annotation(
            ws, Annotation(Kind.PROBE, [(n, n)], img, shown.study_uid, shown.series_uid)
        )
        for n, (name, img) in enumerate(
            [("a", first), ("b", second), ("c", other_frame), ("d", first)]
        )
    }
    app.delete_annotation(ws, made["d"].uid)
    assert app.list_annotations_on(ws, shown.study_uid, first) == [made["a"]]
    assert app.list_annotations_on(ws, shown.study_uid, other_frame) == [made["c"]]
    assert app.list_annotations_on(ws, "9.9.9", first) == []  # another study's image


def test_an_edit_of_an_older_revision_is_refused_but_undo_chains_are_not(
    ws: Workstation, shown: Shown
) -> None:
    first = app.open_session(ws, shown.study_uid)
    a = first.create(
        Annotation(Kind.LENGTH, [(1, 1), (4, 5)], _image(shown), shown.study_uid, shown.series_uid)
    )
    second = app.open_session(ws, shown.study_uid)  # another viewer session on the study
    first.move(a.uid, 1, 0)
    with pytest.raises(StaleAnnotation, match="changed elsewhere since revision 0"):
        second.move(a.uid, 0, 1)  # it would have undone the first session's move
    assert not second.history.can_undo
    # one session's steps, undone and redone across each other, are never stale
    first.edit(a.uid, text="x")
    first.move(a.uid, 0, 2)
    for step in (first.undo, first.undo, first.undo, first.redo, first.redo, first.redo):
        step()
    (stored,) = app.list_annotations(ws, shown.study_uid)
    assert (stored.points, stored.text) == (((2, 3), (5, 7)), "x")
    assert stored.revision == 9  # 3 edits, 3 undone, 3 redone
