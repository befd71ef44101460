"""What the local study database costs (issue 16), on an encrypted profile, same run:

- recording: a series shown (the access event *and* its study recorded, core.app.access) vs the
  bare access event the window wrote before, on the shared 134-slice CT (median of ROUNDS);
- listing: a study-list search or the recent list over 10,000 studies (the Query event
  included) vs the Query event alone; and the local priors lookup.

The recording runs in the window's serial audit job, the list in a job: neither on the GUI
thread. Printed as ratios and milliseconds.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CT = REPO.parent / "shared" / "data" / "dicom" / "pyvista__vtk-data" / "Data" / "DICOM_Stack"
ROUNDS = 7
N_STUDIES = 10_000


def _median_s(run: Callable[[], object]) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _fill(ws: object) -> None:
    from core.app.workstation import Workstation
    from core.studies import catalogue
    from core.studies.catalogue import StudyEntry

    assert isinstance(ws, Workstation)
    with ws.db.transaction() as conn:
        for i in range(N_STUDIES):
            entry = StudyEntry(
                study_uid=f"1.2.826.0.1.{i}",
                patient_id=f"P{i % 3000}",
                patient_name=f"NAME{i % 997}^GIVEN{i % 13}",
                accession=f"ACC{i}",
                study_date=f"20{10 + i % 15:02d}0{1 + i % 9}15",
                modalities=("CT",) if i % 2 else ("MR", "SR"),
                location=(f"/data/{i}/1.dcm",),
            )
            catalogue.upsert(conn, entry, opened=i % 3 == 0)


def main() -> None:
    from core.app.access import series_participants, series_viewed
    from core.app.studies import list_studies
    from core.app.workstation import Workstation
    from core.audit.events import Participants
    from core.audit.vocabulary import EventType
    from core.imaging.index import build_index
    from core.studies.catalogue import StudySearch
    from core.studies.priors import PatientKey, local_priors

    if not CT.is_dir():
        print(f"skipped: the shared CT is not at '{CT}'")
        return
    with tempfile.TemporaryDirectory(prefix="doctorai-bench-studies-") as name:
        os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
        os.environ["XDG_DATA_HOME"] = name  # a throw-away keyring for the benchmark's key
        ws = Workstation.open_for_cli(Path(name) / "ws.db")
        try:
            ((patient, study, series),) = list(build_index([str(CT)]).iter_series())
            who = series_participants(patient, study, series)
            bare = _median_s(
                lambda: ws.record(EventType.INSTANCES_ACCESSED, who, action="view", modality="CT")
            )
            recorded = _median_s(lambda: series_viewed(ws, patient, study, series))
            print(
                f"series shown (134-slice CT): access event + study recorded "
                f"{recorded * 1e3:.1f} ms vs the access event alone {bare * 1e3:.1f} ms "
                f"= {recorded / bare:.2f}x"
            )
            start = time.perf_counter()
            _fill(ws)
            print(f"{N_STUDIES} studies recorded in {time.perf_counter() - start:.1f} s")
            query = _median_s(lambda: ws.record(EventType.QUERY, Participants(), action="list"))
            for label, search in (
                ("name 'name12 given3'", StudySearch(text="name12 given3")),
                ("accession 'ACC9999'", StudySearch(text="ACC9999")),
                ("2020, MR", StudySearch(date_from="20200101", date_to="20201231", modality="MR")),
                ("recent 50", None),
            ):
                t = _median_s(lambda s=search: list_studies(ws, s))  # type: ignore[misc]
                print(
                    f"list {label} of {N_STUDIES}: {t * 1e3:.1f} ms "
                    f"({t / query:.2f}x the Query event alone, {query * 1e3:.1f} ms)"
                )
            with ws.db.engine.connect() as conn:
                key = PatientKey("P17", "")
                t = _median_s(lambda: local_priors(conn, key, ""))
                print(f"local priors of one patient among {N_STUDIES}: {t * 1e3:.2f} ms")
        finally:
            ws.close()
