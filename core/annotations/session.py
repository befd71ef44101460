"""The annotations of one viewer session: what is on the images now, and its undo history.

The window holds one per open study; its tools call ``create``, ``move``, ``edit`` and
``delete`` (from a worker: each step is written through the sink before it returns), and draw
``on(image)``. Annotations of other authors are shown read-only: changing one is refused with
a message naming its author, before anything is written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import replace

from core.annotations.model import (
    AcquiredImage,
    Annotation,
    AnnotationError,
    ImageRef,
    PlaneImage,
    Point,
    StaleAnnotation,
)
from core.annotations.undo import AnnotationSink, Create, Delete, History, Update


class ReadOnlyAnnotation(AnnotationError):
    """An annotation of another author was to be changed."""


class AnnotationSession:
    """``on_change(what, annotation, deleted)`` is called after each step, in the thread that
    ran it (the window re-emits it to its GUI thread)."""

    def __init__(
        self,
        sink: AnnotationSink,
        author: str,
        loaded: Iterable[Annotation] = (),
        on_change: Callable[[str, Annotation, bool], None] | None = None,
    ) -> None:
        self.author = author
        self._items: dict[str, Annotation] = {a.uid: a for a in loaded}
        self._deleted: set[str] = set()
        self._lock = threading.RLock()
        self._listener = on_change
        self.history = History(sink, on_change=self._changed)

    def listen(self, on_change: Callable[[str, Annotation, bool], None] | None) -> None:
        """Set who is told of each step (a session opened by ``core.app.annotations.
        open_session`` has no listener until the window gives it one)."""
        self._listener = on_change

    # what is shown

    def all(self) -> list[Annotation]:
        with self._lock:
            return [a for uid, a in self._items.items() if uid not in self._deleted]

    def get(self, uid: str) -> Annotation:
        with self._lock:
            if uid not in self._items or uid in self._deleted:
                raise KeyError(f"no annotation '{uid}' in this session")
            return self._items[uid]

    def on(self, image: ImageRef) -> list[Annotation]:
        """The annotations drawn on one image: an acquired frame, or a reformatted plane that
        shows the same plane (its grid may differ: draw their points through
        ``PlaneImage.map_points``)."""
        if isinstance(image, AcquiredImage):
            key = (image.sop_instance_uid, image.frame)
            return [
                a
                for a in self.all()
                if isinstance(a.image, AcquiredImage)
                and (a.image.sop_instance_uid, a.image.frame) == key
            ]
        return [a for a in self.all() if isinstance(a.image, PlaneImage) and a.image.shows(image)]

    def editable(self, a: Annotation) -> bool:
        return a.author == self.author

    # changes (each stored through the sink, then undoable)

    def create(self, annotation: Annotation) -> Annotation:
        return self.history.run(Create(annotation))

    def move(self, uid: str, d_row: float, d_col: float) -> Annotation:
        before = self._own(uid)
        return self.history.run(Update(before, before.moved(d_row, d_col), "move"))

    def move_label(self, uid: str, top_left: Point | None) -> Annotation:
        """The label dragged to ``top_left`` (None: placed automatically again)."""
        before = self._own(uid)
        return self.history.run(Update(before, before.edited(label_pos=top_left), "move label"))

    def edit(self, uid: str, **changes: object) -> Annotation:
        before = self._own(uid)
        return self.history.run(Update(before, before.edited(**changes), "edit"))

    def delete(self, uid: str) -> Annotation:
        return self.history.run(Delete(self._own(uid)))

    def undo(self) -> Annotation | None:
        return self.history.undo()

    def redo(self) -> Annotation | None:
        return self.history.redo()

    def _own(self, uid: str) -> Annotation:
        a = self.get(uid)
        if not self.editable(a):
            raise ReadOnlyAnnotation(
                f"{a.what} was drawn by '{a.author}': it is read-only for '{self.author}'"
            )
        return a

    def _changed(self, what: str, annotation: Annotation, deleted: bool) -> None:
        with self._lock:
            self._items[annotation.uid] = annotation
            if deleted:
                self._deleted.add(annotation.uid)
            else:
                self._deleted.discard(annotation.uid)
        if self._listener is not None:
            self._listener(what, annotation, deleted)


class SessionOnly:
    """The sink of a window opened without a profile (tests, screenshots): annotations live
    for this session only, nothing is stored or audited because no trail exists. Times are
    left empty; revisions count as the store counts them. Thread-safe."""

    def __init__(self, author: str) -> None:
        self.author = author
        self._lock = threading.Lock()
        self.items: dict[str, Annotation] = {}
        self.deleted: set[str] = set()

    def create(self, annotation: Annotation) -> Annotation:
        with self._lock:
            if annotation.uid in self.items:
                raise AnnotationError(f"{annotation.what} exists already")
            a = replace(annotation, author=self.author, revision=0)
            self.items[a.uid] = a
            return a

    def update(self, annotation: Annotation) -> Annotation:
        with self._lock:
            before = self._live(annotation.uid)
            if annotation.revision != before.revision:
                raise StaleAnnotation(
                    f"{before.what} was changed since revision {annotation.revision}"
                )
            a = before.revised(annotation)
            self.items[a.uid] = a
            return a

    def delete(self, uid: str) -> Annotation:
        with self._lock:
            a = self._live(uid)
            self.deleted.add(uid)
            return a

    def restore(self, uid: str) -> Annotation:
        with self._lock:
            if uid not in self.deleted:
                raise KeyError(f"annotation '{uid}' is not deleted")
            self.deleted.discard(uid)
            return self.items[uid]

    def _live(self, uid: str) -> Annotation:
        if uid not in self.items or uid in self.deleted:
            raise KeyError(f"no annotation '{uid}' in this session")
        return self.items[uid]
