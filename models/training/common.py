"""Shared helpers for the zoo's training scripts: data, seeding, metrics, package writing.

Every script preprocesses its data with ``models.preprocess`` and the manifest's own steps, so
training and the app feed the network identically.
"""

from __future__ import annotations

import os
import platform
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.manifest import InputSpec
from models.metrics import classification_metrics
from models.package_files import SYNTHETIC_NOTE as SYNTHETIC_NOTE  # the scripts use common.*
from models.package_files import finish_package as finish_package
from models.preprocess import preprocess_batch

REPO = Path(__file__).resolve().parents[2]
ZOO = REPO / "models" / "zoo"
SHARED_DATA = Path(os.environ.get("DOCTORAI_SHARED_DATA", REPO.parent / "shared" / "data"))
MEDMNIST = SHARED_DATA / "medmnist"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


def load_medmnist(name: str) -> dict[str, npt.NDArray[Any]]:
    with np.load(MEDMNIST / f"{name}.npz") as data:
        return {k: data[k] for k in ("train_images", "train_labels", "val_images", "val_labels")}


def prep(images: npt.NDArray[Any], spec: dict[str, Any], model_id: str) -> npt.NDArray[np.float32]:
    return preprocess_batch(
        list(images.astype(np.float32)), InputSpec.model_validate(spec), model_id
    )


def rounded_metrics(
    y: npt.NDArray[Any], probs: npt.NDArray[Any], positive: int | None, threshold: float = 0.5
) -> dict[str, float]:
    return {
        k: round(v, 4) for k, v in classification_metrics(y, probs, positive, threshold).items()
    }


def fresh_dir(out: Path) -> Path:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return out


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPU(s), {platform.python_version()}"
