"""Undo and redo of annotation changes: one command stack per viewer session, no Qt.

A command changes the annotations through a sink (``AnnotationSink``: the use cases of
``core.app.annotations`` in the window, so each step is stored and audited as it happens; a
plain in-memory sink in tests). A step that fails (a refused permission, a store error) leaves
the stack as it was, so undo never runs past what really happened. Undoing a creation deletes
the annotation (kept, flagged deleted, for the audit); redoing it, or undoing a deletion,
restores the same annotation under the same UID.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from core.annotations.model import Annotation


class AnnotationSink(Protocol):
    """Where changes go. Each returns the annotation as now stored (author, times, revision
    set by the store)."""

    def create(self, annotation: Annotation) -> Annotation: ...

    def update(self, annotation: Annotation) -> Annotation: ...

    def delete(self, uid: str) -> Annotation: ...

    def restore(self, uid: str) -> Annotation: ...


class Command(Protocol):
    name: str  # "create", "move", "edit", "delete": for the Edit menu's "Undo move"

    def do(self, sink: AnnotationSink) -> Annotation: ...

    def undo(self, sink: AnnotationSink) -> Annotation: ...

    def deleted_after(self, undone: bool) -> bool:
        """Whether the annotation is deleted once this step is done (or undone)."""
        ...


@dataclass
class Create:
    annotation: Annotation
    name: str = "create"
    _done_once: bool = False

    def do(self, sink: AnnotationSink) -> Annotation:
        if self._done_once:  # redo: the same annotation comes back
            return sink.restore(self.annotation.uid)
        self.annotation = sink.create(self.annotation)
        self._done_once = True
        return self.annotation

    def undo(self, sink: AnnotationSink) -> Annotation:
        return sink.delete(self.annotation.uid)

    def deleted_after(self, undone: bool) -> bool:
        return undone


@dataclass
class Update:
    """A move or an edit: the before and the after, each written whole."""

    before: Annotation
    after: Annotation
    name: str = "edit"

    def do(self, sink: AnnotationSink) -> Annotation:
        return sink.update(self.after)

    def undo(self, sink: AnnotationSink) -> Annotation:
        return sink.update(self.before)

    def deleted_after(self, undone: bool) -> bool:
        return False


@dataclass
class Delete:
    annotation: Annotation
    name: str = "delete"

    def do(self, sink: AnnotationSink) -> Annotation:
        return sink.delete(self.annotation.uid)

    def undo(self, sink: AnnotationSink) -> Annotation:
        return sink.restore(self.annotation.uid)

    def deleted_after(self, undone: bool) -> bool:
        return not undone


class _AtKnownRevision:
    """The sink as History uses it: each update goes at the revision last returned for that
    annotation, so an undo or redo (whose before/after were taken earlier) is not refused as
    stale by a store that checks revisions, while a change made elsewhere meanwhile still is."""

    def __init__(self, sink: AnnotationSink) -> None:
        self.sink = sink
        self.revisions: dict[str, int] = {}

    def _seen(self, a: Annotation) -> Annotation:
        self.revisions[a.uid] = a.revision
        return a

    def create(self, annotation: Annotation) -> Annotation:
        return self._seen(self.sink.create(annotation))

    def update(self, annotation: Annotation) -> Annotation:
        revision = self.revisions.get(annotation.uid, annotation.revision)
        return self._seen(self.sink.update(replace(annotation, revision=revision)))

    def delete(self, uid: str) -> Annotation:
        return self._seen(self.sink.delete(uid))

    def restore(self, uid: str) -> Annotation:
        return self._seen(self.sink.restore(uid))


#: Steps kept for undo; older ones are dropped (they stay stored and audited).
DEFAULT_DEPTH = 200


class History:
    """The undo and redo stacks. ``run`` does a new command and clears redo. Thread-safe: the
    window runs steps in a worker (one at a time); the lock keeps two from interleaving."""

    def __init__(
        self,
        sink: AnnotationSink,
        depth: int = DEFAULT_DEPTH,
        on_change: Callable[[str, Annotation, bool], None] | None = None,
    ) -> None:
        if depth < 1:
            raise ValueError(f"undo depth {depth} must be at least 1")
        self.sink = _AtKnownRevision(sink)
        self.depth = depth
        #: (what happened, the annotation as now stored, whether it is now deleted)
        self.on_change = on_change
        self._undo: list[Command] = []
        self._redo: list[Command] = []
        self._lock = threading.RLock()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_name(self) -> str:
        """The step Undo would take back ("" when none)."""
        return self._undo[-1].name if self._undo else ""

    @property
    def redo_name(self) -> str:
        return self._redo[-1].name if self._redo else ""

    def run(self, command: Command) -> Annotation:
        with self._lock:
            result = command.do(self.sink)  # raises: nothing recorded
            self._undo.append(command)
            del self._undo[: -self.depth]
            self._redo.clear()
        self._notify(command.name, result, command.deleted_after(False))
        return result

    def undo(self) -> Annotation | None:
        """Take back the last step; None when there is none."""
        with self._lock:
            if not self._undo:
                return None
            command = self._undo[-1]
            result = command.undo(self.sink)
            self._redo.append(self._undo.pop())
        self._notify(f"undo {command.name}", result, command.deleted_after(True))
        return result

    def redo(self) -> Annotation | None:
        with self._lock:
            if not self._redo:
                return None
            command = self._redo[-1]
            result = command.do(self.sink)
            self._undo.append(self._redo.pop())
        self._notify(f"redo {command.name}", result, command.deleted_after(False))
        return result

    def clear(self) -> None:
        with self._lock:
            self._undo.clear()
            self._redo.clear()

    def _notify(self, what: str, annotation: Annotation, deleted: bool) -> None:
        if self.on_change is not None:
            self.on_change(what, annotation, deleted)
