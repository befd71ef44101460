"""Use cases of annotations and key images: create, edit, delete, restore, list; mark and
unmark a key image, list them (issue 17).

Each write does the whole job in one transaction: checks the actor's permission, stores the
row and appends the audit event - DICOM Instances Accessed (PS3.15 A.5.3.2) with its event
action (C create, U update, D delete) in ``event_action`` - naming the patient, the study, the
series, the image and the annotation. A change is durable when the call returns, so quitting
or a crash loses nothing returned. Callable from any thread (each call takes its own pooled
connection; BEGIN IMMEDIATE serialises writers): the window calls them from a worker.

Who may do what (chosen here, see ``WRITE``): annotations and key images are part of the read,
so writing them needs the radiologist's ``decide`` permission; anyone who may view images sees
every author's annotations of a study, and only the author may change or delete their own
(others' are read-only, ``AnnotationSession.editable``). Listing is not audited on its own:
the series it is drawn on was audited when it was shown (core.app.access.series_viewed).

The patient is named from the local study database (the study is recorded there when one of
its series is shown); annotating a study not recorded there is refused with that reason.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection

from core.annotations import store
from core.annotations.model import AcquiredImage, Annotation, AnnotationError, StaleAnnotation
from core.annotations.session import AnnotationSession
from core.annotations.store import KeyImage, NotFound, Purpose
from core.app.workstation import Workstation
from core.audit.events import Actor, Participants, event
from core.audit.log import StoredEvent
from core.audit.vocabulary import EventType
from core.security.users import Permission, PermissionDenied
from core.studies import catalogue

#: Drawing, editing and deleting annotations and marking key images.
WRITE = Permission.DECIDE
#: Seeing them (every author's).
READ = Permission.VIEW


StudyNotRecorded = catalogue.StudyNotRecorded  # raised here; its one home is the catalogue


def _patient(conn: Connection, study_uid: str) -> tuple[str, str]:
    return catalogue.patient_of(conn, study_uid, "its annotations")


def _participants(
    conn: Connection, study_uid: str, series_uid: str, sop_uid: str, kind: str, uid: str
) -> Participants:
    patient_id, name = _patient(conn, study_uid)
    found = Participants().patient(patient_id, name).study(study_uid).series(series_uid)
    if sop_uid:
        found.add("instance", sop_uid)
    return found.add(kind, uid)


def _audit(
    ws: Workstation,
    conn: Connection,
    actor: Actor,
    a: Annotation,
    action: str,
    code: str,
    **details: Any,
) -> StoredEvent:
    who = _participants(conn, a.study_uid, a.series_uid, a.sop_instance_uid, "annotation", a.uid)
    return ws.audit.append(
        event(
            EventType.INSTANCES_ACCESSED,
            actor,
            who,
            action=f"annotation-{action}",
            event_action=code,
            kind=a.kind.value,
            **details,
        ),
        conn=conn,
    )


def _own(conn: Connection, actor: Actor, uid: str, *, deleted: bool) -> Annotation:
    """The stored annotation, if it is the actor's and in the expected deleted state."""
    stored, is_deleted = store.get_annotation(conn, uid)
    if stored.author != actor.user:
        raise PermissionDenied(
            f"{stored.what} was drawn by '{stored.author}': '{actor.user}' may not change it"
        )
    if is_deleted != deleted:
        state = "deleted" if is_deleted else "not deleted"
        raise NotFound(f"{stored.what} is {state}")
    return stored


def create_annotation(ws: Workstation, annotation: Annotation) -> Annotation:
    """Store a new annotation as the actor's; returns it with author, times and revision 0."""
    actor = ws.require(WRITE)
    a = replace(annotation, author=actor.user, revision=0)
    with ws.db.transaction() as conn:
        try:
            store.get_annotation(conn, a.uid)
        except NotFound:
            pass
        else:
            raise AnnotationError(f"{a.what} is stored already (restore it, or draw a new one)")
        stored = _audit(ws, conn, actor, a, "create", "C")
        a = replace(a, created_at=stored.created_at, modified_at=stored.created_at)
        store.insert_annotation(conn, a, stored.index)
    return a


def update_annotation(ws: Workstation, annotation: Annotation, what: str = "edit") -> Annotation:
    """Store an edit (points, text, label position) of one of the actor's annotations; its
    kind, image, study and series cannot change, and ``annotation.revision`` must be the one
    stored (an edit of an older revision would undo a change made elsewhere: StaleAnnotation).
    ``what`` ("move", "edit") is audited."""
    actor = ws.require(WRITE)
    with ws.db.transaction() as conn:
        before = _own(conn, actor, annotation.uid, deleted=False)
        fixed = ("kind", "image", "study_uid", "series_uid")
        changed = [f for f in fixed if getattr(before, f) != getattr(annotation, f)]
        if changed:
            raise AnnotationError(f"{before.what}: its {', '.join(changed)} cannot be changed")
        if annotation.revision != before.revision:
            raise StaleAnnotation(
                f"{before.what} was changed elsewhere since revision {annotation.revision} "
                f"(stored: {before.revision}): reload it before editing"
            )
        a = before.revised(annotation)
        stored = _audit(ws, conn, actor, a, "update", "U", change=what, revision=a.revision)
        a = replace(a, modified_at=stored.created_at)
        store.update_annotation(conn, a, stored.index)
    return a


def _set_deleted(ws: Workstation, uid: str, deleted: bool) -> Annotation:
    actor = ws.require(WRITE)
    with ws.db.transaction() as conn:
        a = _own(conn, actor, uid, deleted=not deleted)
        stored = (
            _audit(ws, conn, actor, a, "delete", "D")
            if deleted
            else _audit(ws, conn, actor, a, "restore", "U")
        )
        store.set_deleted(conn, uid, deleted, stored.created_at, stored.index)
    return replace(a, modified_at=stored.created_at)


def delete_annotation(ws: Workstation, uid: str) -> Annotation:
    """Delete one of the actor's annotations (the row stays, flagged, for the audit)."""
    return _set_deleted(ws, uid, True)


def restore_annotation(ws: Workstation, uid: str) -> Annotation:
    """Bring back a deleted annotation of the actor's (undo of a delete, redo of a create)."""
    return _set_deleted(ws, uid, False)


def list_annotations(
    ws: Workstation, study_uid: str, series_uid: str | None = None
) -> list[Annotation]:
    """The study's (or one series') annotations, every author's; see the module docstring."""
    ws.require(READ)
    with ws.db.engine.connect() as conn:
        return store.annotations_of(conn, study_uid, series_uid)


def list_annotations_on(ws: Workstation, study_uid: str, image: AcquiredImage) -> list[Annotation]:
    """The annotations of one acquired frame, every author's: an indexed read, so the image
    the window shows first is drawn with its annotations before the rest of the series (read
    by ``list_annotations``) has been loaded."""
    ws.require(READ)
    with ws.db.engine.connect() as conn:
        return store.annotations_on(conn, study_uid, image)


class StoredAnnotations:
    """The sink an ``AnnotationSession`` writes through: each step is a use case above."""

    def __init__(self, ws: Workstation) -> None:
        self.ws = ws

    def create(self, annotation: Annotation) -> Annotation:
        return create_annotation(self.ws, annotation)

    def update(self, annotation: Annotation) -> Annotation:
        return update_annotation(self.ws, annotation)

    def delete(self, uid: str) -> Annotation:
        return delete_annotation(self.ws, uid)

    def restore(self, uid: str) -> Annotation:
        return restore_annotation(self.ws, uid)


def open_session(ws: Workstation, study_uid: str) -> AnnotationSession:
    """A viewer session over the study's stored annotations, writing through the use cases
    (its undo and redo too). Read in the caller's thread: call it from a worker."""
    loaded = list_annotations(ws, study_uid)
    return AnnotationSession(StoredAnnotations(ws), ws.actor.user, loaded)


# key images


def mark_key_image(
    ws: Workstation,
    study_uid: str,
    series_uid: str,
    image: AcquiredImage,
    purpose: Purpose = Purpose.OF_INTEREST,
) -> KeyImage:
    """Mark a frame as a key image of the actor's; marking it again with the same purpose
    returns the existing mark (nothing new is written or audited)."""
    actor = ws.require(WRITE)
    purpose = Purpose(purpose)
    with ws.db.transaction() as conn:
        found = store.active_key_image(
            conn, image.sop_instance_uid, image.frame, actor.user, purpose
        )
        if found is not None:
            return found
        uid = str(uuid.uuid4())
        who = _participants(conn, study_uid, series_uid, image.sop_instance_uid, "key-image", uid)
        stored = ws.audit.append(
            event(
                EventType.INSTANCES_ACCESSED,
                actor,
                who,
                action="key-image-mark",
                event_action="C",
                purpose=purpose.value,
                frame=image.frame,
            ),
            conn=conn,
        )
        key = KeyImage(
            uid,
            study_uid,
            series_uid,
            image.sop_instance_uid,
            image.frame,
            actor.user,
            purpose,
            stored.created_at,
        )
        store.insert_key_image(conn, key, stored.index)
    return key


def unmark_key_image(ws: Workstation, uid: str) -> KeyImage:
    """Take back one of the actor's key-image marks (kept, with its removal time)."""
    actor = ws.require(WRITE)
    with ws.db.transaction() as conn:
        key = store.get_key_image(conn, uid)
        if key.author != actor.user:
            raise PermissionDenied(
                f"key image '{uid}' was marked by '{key.author}': '{actor.user}' may not unmark it"
            )
        who = _participants(
            conn, key.study_uid, key.series_uid, key.sop_instance_uid, "key-image", uid
        )
        stored = ws.audit.append(
            event(
                EventType.INSTANCES_ACCESSED,
                actor,
                who,
                action="key-image-unmark",
                event_action="D",
                purpose=key.purpose.value,
                frame=key.frame,
            ),
            conn=conn,
        )
        store.remove_key_image(conn, uid, stored.created_at, stored.index)
    return key


def list_key_images(ws: Workstation, study_uid: str) -> list[KeyImage]:
    """The study's key images, every author's, oldest first."""
    ws.require(READ)
    with ws.db.engine.connect() as conn:
        return store.key_images_of(conn, study_uid)
