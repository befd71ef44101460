"""One recipe for the Keras image classifiers (TensorFlow backend): train, calibrate, package."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from models.metrics import (
    binary_auc,
    classification_metrics,
    fit_temperature,
    youden_threshold,
)
from models.training import common

TARGET_LAYER = "gradcam_target"


def small_cnn(
    size: tuple[int, int], channels: int, n_classes: int, widths: tuple[int, int] = (16, 32)
) -> keras.Model:
    """conv-pool-conv-conv(target, 1/2 resolution) -> GAP -> dense logits.

    Shallow on purpose: the Grad-CAM target sits at half the input resolution with a receptive
    field of about 12 px, so the heatmap lands on the lesion rather than a blurred region around
    it. Batch norm after every conv keeps the ReLUs alive on these small data sets.
    """

    def conv(x: Any, width: int, name: str | None = None) -> Any:
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        return keras.layers.Activation("relu", name=name)(x)

    inp = keras.Input((size[0], size[1], channels), name="image")
    x = keras.layers.MaxPooling2D()(conv(inp, widths[0]))
    x = conv(conv(x, widths[1]), widths[1], name=TARGET_LAYER)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    out = keras.layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inp, out)


@dataclass
class Recipe:
    manifest: dict[str, Any]
    xtr: npt.NDArray[Any]
    ytr: npt.NDArray[Any]
    xva: npt.NDArray[Any]
    yva: npt.NDArray[Any]
    epochs: int
    lr: float
    batch: int
    seed: int
    metrics_info: dict[str, Any]
    sources: Path | None
    flips: bool = True


def _augment(x: npt.NDArray[np.float32], rng: np.random.Generator) -> npt.NDArray[np.float32]:
    out = x.copy()
    flip = rng.random(len(x)) < 0.5
    out[flip] = out[flip][:, :, ::-1]
    return out


def run(recipe: Recipe, out: Path) -> dict[str, Any]:
    threads = int(os.environ.get("DOCTORAI_TRAIN_THREADS", "1"))
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    mid, spec = recipe.manifest["id"], recipe.manifest["input"]
    xtr, xva = common.prep(recipe.xtr, spec, mid), common.prep(recipe.xva, spec, mid)
    labels = recipe.manifest["output"]["labels"]
    pos_label = recipe.manifest["output"].get("positive_label")
    positive = labels.index(pos_label) if pos_label else None
    model = small_cnn(tuple(spec["size"]), spec["channels"], len(labels))
    model.compile(
        optimizer=keras.optimizers.Adam(recipe.lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )

    @tf.function  # type: ignore[untyped-decorator]
    def forward(x: Any) -> Any:
        return model(x, training=False)

    best: dict[str, Any] = {"score": -1.0}
    start = time.perf_counter()
    for epoch in range(recipe.epochs):
        xb = _augment(xtr, rng) if recipe.flips else xtr
        hist = model.fit(xb, recipe.ytr, batch_size=recipe.batch, epochs=1, verbose=0, shuffle=True)
        logits = forward(xva).numpy()
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
        score = (
            binary_auc(recipe.yva == positive, probs[:, positive])
            if positive is not None
            else classification_metrics(recipe.yva, probs, None)["accuracy"]
        )
        print(
            f"epoch {epoch + 1}/{recipe.epochs} loss {hist.history['loss'][0]:.4f} "
            f"val {score:.4f} ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
        if score > best["score"]:
            best = {"score": score, "epoch": epoch + 1, "weights": model.get_weights()}
    train_seconds = round(time.perf_counter() - start, 1)
    model.set_weights(best["weights"])
    logits = forward(xva).numpy()
    temperature = fit_temperature(logits, recipe.yva)
    z = logits / temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    thresholds = dict(recipe.manifest["output"].get("thresholds", {}))
    threshold = 0.5
    if positive is not None:  # operating point: Youden's J on val (recorded in the manifest)
        threshold = youden_threshold(recipe.yva == positive, probs[:, positive])
        thresholds = {pos_label: threshold}
    metrics = common.rounded_metrics(recipe.yva, probs, positive, threshold)
    common.fresh_dir(out)
    model.save(out / "model.keras")
    output = {
        **recipe.manifest["output"],
        "thresholds": thresholds,
        "activation": "softmax",
        "calibrated": True,
        "calibration": {"method": "temperature", "temperature": temperature, "fit_on": "val"},
    }
    manifest = {
        **recipe.manifest,
        "output": output,
        "weights": "model.keras",
        "heatmap": {"method": "gradcam", "target_layer": TARGET_LAYER},
        "metrics": {**recipe.metrics_info, "n": len(recipe.yva), **metrics},
        "extra": {
            "parameters": int(model.count_params()),
            "best_epoch": best["epoch"],
            "epochs": recipe.epochs,
            "train_seconds": train_seconds,
            "seed": recipe.seed,
            "trained_on": common.machine(),
        },
    }
    pick = np.concatenate([np.flatnonzero(recipe.yva == c)[:2] for c in np.unique(recipe.yva)])
    pick.sort()
    zs = forward(xva[pick]).numpy() / temperature
    es = np.exp(zs - zs.max(axis=1, keepdims=True))
    common.finish_package(
        out,
        manifest,
        recipe.xva[pick].astype(np.float32),
        es / es.sum(axis=1, keepdims=True),
        recipe.sources,
    )
    summary = {
        "id": mid,
        "metrics": metrics,
        "temperature": temperature,
        "threshold": threshold,
        "params": int(model.count_params()),
        "best_epoch": best["epoch"],
        "train_seconds": train_seconds,
    }
    print(json.dumps(summary, indent=2))
    return summary
