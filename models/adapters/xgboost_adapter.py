"""XGBoost adapter: a Booster saved as JSON or UBJ, run with ``inplace_predict``."""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from models.adapters.base import F32, LoadedModel, ModelLoadError, module_available
from models.manifest import ModelPackage
from models.postprocess import probabilities

FRAMEWORK = "xgboost"
REQUIREMENT = "xgboost==3.2.0"


def is_available() -> bool:
    return module_available("xgboost")


def gpu_available() -> bool:
    """A CUDA build AND a one-round training job that really stayed on the GPU.

    XGBoost silently falls back to CPU (with a warning) when no GPU is visible, so the device
    the booster ended up on is read back from its config rather than trusted.
    """
    import xgboost

    if not xgboost.build_info().get("USE_CUDA"):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the "No visible GPU" fallback notice
            data = xgboost.DMatrix(np.zeros((2, 1), dtype=np.float32), label=[0.0, 1.0])
            booster = xgboost.train(
                {"device": "cuda", "tree_method": "hist"}, data, num_boost_round=1
            )
            config = json.loads(booster.save_config())
    except xgboost.core.XGBoostError:
        return False
    return str(config["learner"]["generic_param"].get("device", "cpu")).startswith("cuda")


def is_out_of_memory(exc: BaseException) -> bool:
    xgb = sys.modules.get("xgboost")
    if xgb is None or not isinstance(exc, xgb.core.XGBoostError):
        return False
    text = str(exc).lower()
    return "out of memory" in text or "cudaerrormemoryallocation" in text


class XGBoostModel(LoadedModel):
    def __init__(self, package: ModelPackage, device: str, booster: Any) -> None:
        super().__init__(package, device)
        self._booster = booster

    def predict(self, batch: npt.NDArray[np.float32]) -> F32:
        margin = self._booster.inplace_predict(
            np.ascontiguousarray(batch, dtype=np.float32), predict_type="margin"
        )
        return probabilities(np.asarray(margin), self.package.manifest.output)

    def memory_bytes(self) -> int:
        return len(self._booster.save_raw(raw_format="ubj"))

    def close(self) -> None:
        self._booster = None


def load(package: ModelPackage, device: str) -> LoadedModel:
    import xgboost

    path = package.file(package.manifest.weights)
    try:
        booster = xgboost.Booster(model_file=str(path))
    except xgboost.core.XGBoostError as exc:
        raise ModelLoadError(f"model '{package.id}': cannot load booster '{path}': {exc}") from exc
    xgb_device = "cuda:0" if device == "gpu" else "cpu"
    booster.set_param({"device": xgb_device, "nthread": 0})
    features = package.manifest.input.features
    if features and booster.feature_names and list(booster.feature_names) != list(features):
        raise ModelLoadError(
            f"model '{package.id}': booster feature names differ from manifest input.features"
        )
    return XGBoostModel(package, xgb_device, booster)
