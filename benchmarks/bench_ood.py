"""Out-of-distribution flag: how well each image model's score separates its own validation
images from other kinds of images, and what the check adds to a run.

Per image model of the zoo and per source: AUROC of the shipped score (Mahalanobis on pooled
penultimate features; negatives = the model's own validation images, positives = the source),
the fraction of the source flagged at the manifest threshold, and for comparison the AUROC of
the energy score of the same logits. Sources: the other zoo data sets (MedMNIST chest and
breast, the brain, skin and H&E phantoms) and the shared DICOM by modality (decoded with
core.imaging), which includes the real MR the phantom-trained brain model must flag.

Overhead: ``run_images`` on the same model and images with the manifest's ``ood`` section and
with a copy of the package without it (baseline), alternated run by run; ratio with / without
of the best wall time and of the median CPU time of the process (steadier on a shared machine).
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.inference.manager import ModelManager
from core.inference.pipeline import run_images
from core.inference.result import InputRef
from models import ood
from models.adapters import load_model
from models.discovery import ZOO_DIR
from models.evaluate import load_reference_data, shared_data_dir
from models.manifest import MANIFEST_NAME, load_package, write_manifest
from models.metrics import binary_auc
from models.preprocess import PreprocessError
from models.training.fit_ood import features_of

MODELS = [
    "chest-xray-pneumonia",
    "breast-ultrasound",
    "brain-tumour-mri",
    "skin-lesion",
    "lung-colon-histopathology",
]
DATASETS = {
    "MedMNIST chest": "medmnist:pneumoniamnist:val",
    "MedMNIST breast": "medmnist:breastmnist:val",
    "brain phantoms": "phantom:brain:seed=402:n=400",
    "skin phantoms": "phantom:skin:seed=602:n=400",
    "H&E phantoms": "phantom:histo:seed=202:n=500",
}
PER_SOURCE = 200  # images per source at most (evenly spaced), to keep the run short
FRAMES_PER_FILE = 8  # multi-frame files: this many frames, evenly spaced
MR = "plotly__dash-vtk/demos/data/mri_brain"


def _even(items: list[Any], n: int) -> list[Any]:
    if len(items) <= n:
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, n)]


def dicom_sources() -> dict[str, list[Any]]:
    """Decoded frames of the shared DICOM, grouped by modality (files that do not decode, or
    carry no image, are left out as the MANIFEST.csv of the data says)."""
    from core.imaging.header import read_header
    from core.imaging.pixels import read_frame

    root = shared_data_dir() / "dicom"
    table = root / "MANIFEST.csv"
    if not table.is_file():
        return {}
    groups: dict[str, list[Any]] = {}
    with table.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["decode"] == "ok" and r["has_pixels"] == "True"]
    for row in rows:
        if row["modality"] in ("SEG", "SR"):
            continue
        local = root / (row["repo"].replace("/", "__")) / row["path"]
        if not local.is_file():
            continue
        name = "real MR" if row["path"].startswith(MR.split("/", 1)[1]) else row["modality"]
        label = f"DICOM {name or 'other (' + row['pi'] + ')'}"
        try:
            instance = read_header(str(local), require_uids=False).instance
            frames = int(row["frames"] or 1)
            picks = sorted({int(i) for i in np.linspace(0, frames - 1, FRAMES_PER_FILE)})
            groups.setdefault(label, []).extend(read_frame(instance, f) for f in picks)
        except Exception as exc:  # noqa: BLE001 - one odd file must not stop the benchmark
            print(f"  (skipped {row['path']}: {type(exc).__name__}: {exc})")
    return {k: _even(v, PER_SOURCE) for k, v in sorted(groups.items())}


def _auc(own: np.ndarray, other: np.ndarray) -> float:
    y = np.concatenate([np.zeros(len(own)), np.ones(len(other))])
    return binary_auc(y, np.concatenate([own, other]))


def _scores(
    model: Any, reference: ood.OodReference, layer: str | None, raw: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The shipped score and, for comparison, the energy of the same model's logits."""
    energy = ood.energy_reference()
    return (
        ood.score(reference, features_of(model, raw, layer)),
        ood.score(energy, features_of(model, raw, "logits")),
    )


def separation(sources: dict[str, list[Any]]) -> None:
    print(f"{'model':<26} {'source':<22} {'n':>4} {'AUROC':>6} {'flagged':>8} {'energy AUROC':>12}")
    for model_id in MODELS:
        package = load_package(ZOO_DIR / model_id)
        spec = package.manifest.ood
        metrics = package.manifest.metrics
        if spec is None or metrics is None:
            print(f"{model_id:<26} (no ood section)")
            continue
        reference = ood.load(package.file(spec.reference))
        model = load_model(package, "cpu")
        try:
            own_raw = _even(list(load_reference_data(metrics.data_ref)[0]), 2 * PER_SOURCE)
            own, own_e = _scores(model, reference, spec.layer, own_raw)
            flagged = float(np.mean(own > spec.threshold))
            print(f"{model_id:<26} {'own validation':<22} {len(own):>4} {'-':>6} {flagged:>8.1%}")
            others, others_e = [], []
            for name, raw in sources.items():
                if DATASETS.get(name) == metrics.data_ref:
                    continue
                try:
                    s, e = _scores(model, reference, spec.layer, raw)
                except PreprocessError as exc:  # e.g. grey images for a colour model
                    print(
                        f"{'':<26} {name:<22} {len(raw):>4} refused before the model: {exc.reason}"
                    )
                    continue
                others.append(s)
                others_e.append(e)
                print(
                    f"{'':<26} {name:<22} {len(s):>4} {_auc(own, s):>6.3f} "
                    f"{np.mean(s > spec.threshold):>8.1%} {_auc(own_e, e):>12.3f}"
                )
            s, e = np.concatenate(others), np.concatenate(others_e)
            print(
                f"{'':<26} {'all other sources':<22} {len(s):>4} {_auc(own, s):>6.3f} "
                f"{np.mean(s > spec.threshold):>8.1%} {_auc(own_e, e):>12.3f}"
            )
        finally:
            model.close()


def _without_ood(model_id: str, into: Path) -> Path:
    """A copy of the package without its ood section: the baseline of the overhead figure."""
    folder = into / model_id
    shutil.copytree(ZOO_DIR / model_id, folder)
    raw = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    raw.pop("ood", None)
    raw.pop("files", None)
    (folder / "ood.npz").unlink(missing_ok=True)
    write_manifest(folder, raw)
    return folder


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds): on a shared machine the CPU time of the
    run is the steadier figure, the wall time the one a user waits."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def overhead(frames: list[Any], repeat: int = 40) -> None:
    """Whole run_images with the OOD check vs without, same model, same images."""
    with tempfile.TemporaryDirectory() as tmp:
        for model_id in ("chest-xray-pneumonia", "brain-tumour-mri"):
            with_ood = ModelManager([load_package(ZOO_DIR / model_id)], device="cpu")
            without = ModelManager([load_package(_without_ood(model_id, Path(tmp)))], device="cpu")
            try:
                for images, heatmap in ((frames[:1], True), (frames, True), (frames, False)):
                    refs = [InputRef(f"1.2.{i}", 0) for i in range(len(images))]

                    def run(
                        manager: ModelManager,
                        images: Any = images,
                        refs: Any = refs,
                        heatmap: bool = heatmap,
                        model_id: str = model_id,
                    ) -> Any:
                        return run_images(manager, model_id, images, refs, heatmap=heatmap)

                    run(with_ood)
                    run(without)  # warm-up: load, trace
                    base, guarded = [], []
                    for _ in range(repeat):  # alternated: drift and load hit both alike
                        base.append(_timed(lambda: run(without)))  # noqa: B023
                        guarded.append(_timed(lambda: run(with_ood)))  # noqa: B023
                    wall_b, wall_g = min(t[0] for t in base), min(t[0] for t in guarded)
                    cpu_b = float(np.median([t[1] for t in base]))
                    cpu_g = float(np.median([t[1] for t in guarded]))
                    print(
                        f"{model_id:<22} {len(images):>3} image(s), heatmap {heatmap!s:<5}: "
                        f"wall best of {repeat} {wall_b * 1e3:6.2f} -> {wall_g * 1e3:6.2f} ms "
                        f"({wall_g / wall_b:.3f}x); CPU median {cpu_b * 1e3:6.2f} -> "
                        f"{cpu_g * 1e3:6.2f} ms ({cpu_g / cpu_b:.3f}x)"
                    )
            finally:
                with_ood.shutdown()
                without.shutdown()


def components(frames: list[Any], repeat: int = 300) -> None:
    """The OOD parts alone, best of many calls (steady under load): the model call with its
    features vs the plain predict, and the scoring, on the same preprocessed batch."""
    from core.inference import ood_guard
    from models.preprocess import preprocess_batch

    def best(fn: Callable[[], Any]) -> float:
        fn()
        return min(_timed(fn)[0] for _ in range(repeat))

    for model_id in ("chest-xray-pneumonia", "brain-tumour-mri"):
        package = load_package(ZOO_DIR / model_id)
        model = load_model(package, "cpu")
        try:
            for n in (1, len(frames)):
                x = preprocess_batch(frames[:n], package.manifest.input, model_id)
                feats = model.predict_with_features(x)[1]
                assert feats is not None
                plain = best(lambda: model.predict(x))  # noqa: B023
                both = best(lambda: model.predict_with_features(x))  # noqa: B023
                check = best(lambda: ood_guard.check(package, feats))  # noqa: B023
                print(
                    f"{model_id:<22} batch {n:>2}: predict {plain * 1e3:.3f} ms, with features "
                    f"{both * 1e3:.3f} ms, scoring {check * 1e3:.3f} ms: "
                    f"{(both + check) / plain:.3f}x the model call"
                )
        finally:
            model.close()


def main() -> None:
    sources: dict[str, list[Any]] = {}
    for name, ref in DATASETS.items():
        try:
            sources[name] = _even(list(load_reference_data(ref)[0]), PER_SOURCE)
        except Exception as exc:  # noqa: BLE001 - report a missing data set, go on
            print(f"  (source {name} unavailable: {exc})")
    dicom = dicom_sources()
    sources.update(dicom)
    print("OOD separation: AUROC own validation (negatives) vs each source (positives)")
    separation(sources)
    mr = dicom.get("DICOM real MR")
    if not mr:
        print("overhead: the shared real MR is not available")
        return
    print("\nOOD overhead: run_images with the ood section vs a copy without it (baseline)")
    overhead(mr)
    print("\nOOD parts alone (best of 300 calls)")
    components(mr)


if __name__ == "__main__":
    main()
