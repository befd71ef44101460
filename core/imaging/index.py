"""Index headers of many files, in parallel, into Patient > Study > Series > Instance.

Per-file problems never stop the rest: each becomes a ``LoadError(path, reason)`` in
``StudyIndex.errors``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from core.imaging.header import Header, HeaderError, read_header
from core.imaging.model import Instance, LoadError, Patient, StudyIndex
from core.imaging.sources import SourceError, enumerate_inputs
from core.logs import note_identifiers

log = logging.getLogger(__name__)

CHUNK = 32  # files per indexing task
Progress = Callable[[int, int], None]
Cancel = Callable[[], bool] | Any  # a callable, or an object with is_set() (threading.Event)


def cancel_check(cancel: Cancel | None) -> Callable[[], bool]:
    """Normalise ``cancel`` (None, a callable or a threading.Event) to a callable."""
    if cancel is None:
        return lambda: False
    is_set = getattr(cancel, "is_set", None)
    if callable(is_set):
        return lambda: bool(is_set())
    if callable(cancel):
        return lambda: bool(cancel())
    raise TypeError(f"cancel must be a callable or an Event, not {type(cancel).__name__}")


def default_workers() -> int:
    # Header parsing is Python (GIL-bound): more threads only add contention on a warm cache,
    # while two overlap the file reads of a cold cache or a network share.
    return 2


def _read_one(path: str) -> Header | LoadError:
    try:
        return read_header(path)
    except (HeaderError, SourceError) as exc:  # SourceError: a refused zip member
        return LoadError(path, str(exc))
    except OSError as exc:
        return LoadError(path, f"cannot read file: {exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - any parser failure is this file's error only
        return LoadError(path, f"{type(exc).__name__}: {exc}")


def read_headers(
    paths: Sequence[str],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> list[Header | LoadError]:
    """Headers of ``paths`` in input order; stops early (shorter list) when cancelled."""
    is_cancelled = cancel_check(cancel)
    results: list[Header | LoadError | None] = [None] * len(paths)
    total = len(paths)
    n_workers = min(workers or default_workers(), max(total // CHUNK, 1))
    lock = threading.Lock()
    done = 0

    def work(indices: range) -> None:
        nonlocal done
        for i in indices:
            if is_cancelled():
                return
            results[i] = _read_one(paths[i])
            if progress:
                with lock:
                    done += 1
                    progress(done, total)

    chunks = [range(s, min(s + CHUNK, total)) for s in range(0, total, CHUNK)]
    if n_workers <= 1:
        for chunk in chunks:
            work(chunk)
    else:
        # Chunks, not one task per file: the per-file work is now small (see scan.py).
        with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="dicom-index") as pool:
            for fut in [pool.submit(work, c) for c in chunks]:
                fut.result()
    return [r for r in results if r is not None]


def slice_normal(instance: Instance) -> np.ndarray | None:
    o = instance.image_orientation
    if o is None:
        return None
    normal = np.cross(np.asarray(o[:3]), np.asarray(o[3:]))
    norm = float(np.linalg.norm(normal))
    return normal / norm if norm > 1e-6 else None


def sort_instances(instances: list[Instance]) -> list[Instance]:
    """Order for display: along the slice normal (ImagePositionPatient projected onto the cross
    product of the ImageOrientationPatient rows), else InstanceNumber, else path."""
    normal = next((n for n in map(slice_normal, instances) if n is not None), None)

    def number(i: Instance) -> tuple[int, int]:
        return (0, i.instance_number) if i.instance_number is not None else (1, 0)

    if normal is not None and all(i.image_position is not None for i in instances):

        def key_geo(i: Instance) -> tuple[float, tuple[int, int], str]:
            pos = float(np.dot(np.asarray(i.image_position), normal))
            return (round(pos, 4), number(i), i.path)

        return sorted(instances, key=key_geo)
    return sorted(instances, key=lambda i: (number(i), i.path))


def _same_name(a: str, b: str) -> bool:
    """DICOM person names compared as a reader would: case, spaces, empty trailing parts."""

    def norm(name: str) -> str:
        return "^".join(part.strip().upper() for part in name.split("^")).rstrip("^")

    return norm(a) == norm(b)


def _name_conflict(patient: Patient, name: str, path: str) -> LoadError | None:
    if not name or not patient.name or _same_name(patient.name, name):
        return None
    return LoadError(
        path,
        f"warning: patient ID '{patient.patient_id}' is also used with the "
        f"name '{patient.name}', this file says '{name}': check that they "
        "are the same patient before reading",
    )


def _add(index: StudyIndex, header: Header, seen: dict[str, str]) -> None:
    """``seen``: SOP Instance UID -> path of the files indexed so far (duplicates are refused:
    a copy of a file, shown twice, would read as two slices at one position)."""
    inst = header.instance
    if inst.sop_instance_uid:
        other = seen.setdefault(inst.sop_instance_uid, inst.path)
        if other != inst.path:
            index.errors.append(
                LoadError(inst.path, f"same SOP Instance UID as '{other}': duplicate not loaded")
            )
            return
    # The header's Patient/Study/Series are fresh objects per file: the first one seen is kept.
    patient = index.patients.setdefault(inst.patient_id, header.patient)
    conflict = _name_conflict(patient, header.patient.name, inst.path)
    if conflict is not None:
        index.warnings.append(conflict)
    if patient is header.patient or conflict is not None:  # kept out of the log files
        note_identifiers((header.patient.name, header.patient.patient_id, patient.birth_date))
    study = patient.studies.setdefault(inst.study_instance_uid, header.study)
    if study is header.study:
        note_identifiers((study.accession_number,))
    series = study.series.setdefault(inst.series_instance_uid, header.series)
    series.instances.append(inst)


def build_index(
    paths: Iterable[str | os.PathLike[str]],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    on_files: Callable[[list[str]], None] | None = None,
) -> StudyIndex:
    """Index files, folders (recursive), zip archives and DICOMDIRs; headers only.

    ``progress(done, total)`` is called from worker threads. When cancelled, the index holds
    what was read so far. Never raises for a bad file: see ``StudyIndex.errors``.
    ``on_files(files)`` sees the instance paths once they are listed, before any header is read
    (the viewer decodes a provisional first image there: ``core.imaging.progressive``).
    """
    files, errors = enumerate_inputs(paths)
    if on_files is not None:
        on_files(files)
    index = StudyIndex(errors=list(errors))
    seen: dict[str, str] = {}
    for result in read_headers(files, workers=workers, progress=progress, cancel=cancel):
        if isinstance(result, LoadError):
            index.errors.append(result)
        else:
            _add(index, result, seen)
    for _, _, series in index.iter_series():
        series.instances[:] = sort_instances(series.instances)
    log.info(
        "indexed %d files: %d series, %d errors",
        len(files),
        sum(1 for _ in index.iter_series()),
        len(index.errors),
    )
    return index


def merge(into: StudyIndex, new: StudyIndex) -> StudyIndex:
    """Add ``new`` into ``into``: new patients/studies/series, and new instances of series
    already open (an instance whose path is already there is skipped). Returns ``into``."""
    for pid, patient in new.patients.items():
        mine = into.patients.setdefault(
            pid, Patient(pid, patient.name, patient.birth_date, patient.sex)
        )
        conflict = _name_conflict(mine, patient.name, f"patient '{pid}'")
        if conflict is not None:
            new.warnings.append(conflict)
        for st_uid, study in patient.studies.items():
            my_study = mine.studies.get(st_uid)
            if my_study is None:
                mine.studies[st_uid] = study
                continue
            for se_uid, series in study.series.items():
                my_series = my_study.series.get(se_uid)
                if my_series is None:
                    my_study.series[se_uid] = series
                    continue
                known = {i.path for i in my_series.instances}
                uids = {i.sop_instance_uid: i.path for i in my_series.instances}
                added = []
                for i in series.instances:
                    if i.path in known:
                        continue
                    if i.sop_instance_uid and i.sop_instance_uid in uids:
                        new.errors.append(
                            LoadError(
                                i.path,
                                f"same SOP Instance UID as '{uids[i.sop_instance_uid]}': "
                                "duplicate not loaded",
                            )
                        )
                        continue
                    added.append(i)
                if added:
                    my_series.instances[:] = sort_instances(my_series.instances + added)
    into.errors.extend(new.errors)
    into.warnings.extend(new.warnings)
    return into


def add_paths(
    index: StudyIndex,
    paths: Iterable[str | os.PathLike[str]],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> StudyIndex:
    """Index more paths into an existing index; returns only the NEW part (e.g. its errors)."""
    new = build_index(paths, workers=workers, progress=progress, cancel=cancel)
    merge(index, new)
    return new
