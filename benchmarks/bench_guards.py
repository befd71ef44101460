"""What the intended-population check costs a run (issue 18: OOD + applicability <= 5%).

Baseline: ``run_model`` of the chest model on the 3.6-megapixel adult chest CR (decoded frame,
heatmap on, as the window runs it) with the population removed from its manifest; against the
same with the zoo manifest's population, which reads the CR's header once and flags the age.
Interleaved, medians of warm runs; the check alone is timed too.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_CR = REPO.parent / "shared" / "data" / "dicom" / "pydicom__pydicom-data" / "data_store"
CR = SHARED_CR / "data" / "RG1_J2KI.dcm"
SAMPLE_CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
MODEL = "chest-xray-pneumonia"
ROUNDS = 25


def main() -> None:
    from core.app.model_runs import run_model
    from core.app.results import SessionResults
    from core.imaging.index import build_index
    from core.imaging.pixels import read_frame
    from core.inference.applicability import check_instances
    from core.inference.manager import ModelManager
    from core.inference.result import InputRef
    from models.discovery import ZOO_DIR
    from models.manifest import load_package

    path = CR if CR.is_file() else SAMPLE_CR
    index = build_index([str(path)])
    instances = [i for _p, _s, series in index.iter_series() for i in series.instances]
    frames = [read_frame(i, 0) for i in instances]
    refs = [InputRef.of(i, 0) for i in instances]
    with_population = load_package(ZOO_DIR / MODEL)
    manifest = with_population.manifest.model_copy(update={"population": None})
    without = dataclasses.replace(with_population, manifest=manifest)
    managers = {
        "baseline (no population)": ModelManager([without], device="cpu"),
        "with population check": ModelManager([with_population], device="cpu"),
    }
    times: dict[str, list[float]] = {name: [] for name in managers}
    try:
        for manager in managers.values():  # load + self-test out of the timing
            run_model(SessionResults(), manager, MODEL, frames, refs, instances=instances)
        for _ in range(ROUNDS):
            for name, manager in managers.items():
                start = time.perf_counter()
                result = run_model(
                    SessionResults(), manager, MODEL, frames, refs, instances=instances
                )
                times[name].append(time.perf_counter() - start)
        flags = [g.message for g in result.guards]
    finally:
        for manager in managers.values():
            manager.shutdown()
    check_times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        check_instances(with_population.manifest.population, instances, len(instances))
        check_times.append(time.perf_counter() - start)
    base = statistics.median(times["baseline (no population)"])
    guarded = statistics.median(times["with population check"])
    check = statistics.median(check_times)
    print(f"input: {path.name} ({frames[0].values.shape[0]}x{frames[0].values.shape[1]})")
    print(f"flag: {flags}")
    print(f"run_model, no population (baseline): {base * 1000:.1f} ms (median of {ROUNDS})")
    print(f"run_model, with population check:    {guarded * 1000:.1f} ms")
    print(f"ratio with/without: {guarded / base:.3f}x")
    print(f"the check alone (one header read): {check * 1000:.2f} ms = {check / base:.1%} of a run")
