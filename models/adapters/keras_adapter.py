"""Keras 3 (TensorFlow backend) adapter: a ``.keras`` file, run through a ``tf.function``.

A traced call is several times faster than eager ``model(x)`` or ``model.predict`` on this CPU
(see ENVIRONMENT.md), so predictions and Grad-CAM both go through compiled graphs with a
fixed input signature (any batch size, no retracing).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
import numpy.typing as npt

from models.adapters.base import F32, LoadedModel, ModelLoadError, module_available, normalise_cam
from models.manifest import ModelPackage
from models.postprocess import probabilities

FRAMEWORK = "keras"
REQUIREMENT = "keras==3.15.1 tensorflow-cpu==2.21.0"


def is_available() -> bool:
    return module_available("keras") and module_available("tensorflow")


def _bind_sqlcipher_first() -> None:
    """TensorFlow's shared libraries carry a plain SQLite. If they load before the sqlcipher3
    extension, its sqlite3_* symbols resolve to TF's copy and every encrypted database in the
    process then reads as "file is not a database". Loading sqlcipher3 first keeps them bound
    to SQLCipher (found when a CLI child process had written the audit trail)."""
    if module_available("sqlcipher3"):
        import sqlcipher3  # noqa: F401


def _import_tf() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ start-up chatter quiet
    _bind_sqlcipher_first()
    import tensorflow as tf

    return tf


def gpu_available() -> bool:
    return bool(_import_tf().config.list_physical_devices("GPU"))


def is_out_of_memory(exc: BaseException) -> bool:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return False
    return isinstance(exc, tf.errors.ResourceExhaustedError)


class KerasModel(LoadedModel):
    def __init__(self, package: ModelPackage, device: str, model: Any) -> None:
        super().__init__(package, device)
        tf = _import_tf()
        self._model = model
        spec = package.manifest.input
        shape = [None, *model.inputs[0].shape[1:]]
        signature = [tf.TensorSpec(shape, tf.float32)]

        def forward(x: Any) -> Any:
            return model(x, training=False)

        self._forward = tf.function(forward, input_signature=signature, reduce_retracing=True)
        self._cam: Any = None
        heat = package.manifest.heatmap
        if heat is not None and heat.method == "gradcam":
            import keras

            try:
                target = model.get_layer(heat.target_layer).output
            except ValueError as exc:
                raise ModelLoadError(
                    f"model '{package.id}': heatmap.target_layer '{heat.target_layer}' not found"
                ) from exc
            grad_model = keras.Model(model.inputs, [target, model.outputs[0]])

            def gradcam(x: Any) -> Any:
                with tf.GradientTape() as tape:
                    feats, logits = grad_model(x, training=False)
                    tape.watch(feats)
                    top = tf.argmax(logits, axis=1)
                    chosen = tf.reduce_sum(tf.gather(logits, top, axis=1, batch_dims=1))
                grads = tape.gradient(chosen, feats)
                weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
                return tf.nn.relu(tf.reduce_sum(weights * feats, axis=-1))

            self._cam = tf.function(gradcam, input_signature=signature, reduce_retracing=True)
        self._size = (spec.size[0], spec.size[1]) if spec.size else None
        self._signature = signature
        self._with_features: dict[str | None, Any] = {}

    def _run(self, fn: Any, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        tf = _import_tf()
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if self.device.endswith("CPU:0"):  # the only device: skip the per-call context cost
            return np.asarray(fn(x).numpy(), dtype=np.float32)
        with tf.device(self.device):
            out = fn(tf.convert_to_tensor(x))
        return np.asarray(out.numpy(), dtype=np.float32)

    def predict(self, batch: npt.NDArray[np.float32]) -> F32:
        return probabilities(self._run(self._forward, batch), self.package.manifest.output)

    def _features_fn(self, layer: str | None) -> Any:
        """A compiled graph giving (logits, pooled features) from one pass, built on first use.

        None = the input of the last layer (the pooled penultimate features the logits are
        computed from); a named layer's 4-D output is averaged over space; "logits" = logits."""
        if layer in self._with_features:
            return self._with_features[layer]
        tf = _import_tf()
        import keras

        model = self._model
        if layer == "logits":
            outputs = [model.outputs[0], model.outputs[0]]
        else:
            try:
                tensor = model.layers[-1].input if layer is None else model.get_layer(layer).output
            except (ValueError, AttributeError) as exc:
                raise ValueError(
                    f"model '{self.id}': feature layer '{layer}' not found: {exc}"
                ) from exc
            outputs = [model.outputs[0], tensor]
        both = keras.Model(model.inputs, outputs)

        def forward(x: Any) -> Any:
            logits, feats = both(x, training=False)
            if len(feats.shape) == 4:
                feats = tf.reduce_mean(feats, axis=(1, 2))
            return logits, tf.reshape(feats, (tf.shape(feats)[0], -1))

        fn = tf.function(forward, input_signature=self._signature, reduce_retracing=True)
        self._with_features[layer] = fn
        return fn

    def predict_with_features(
        self, batch: npt.NDArray[np.float32], layer: str | None = None
    ) -> tuple[F32, F32 | None]:
        tf = _import_tf()
        fn = self._features_fn(layer)
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if self.device.endswith("CPU:0"):
            logits, feats = fn(x)
        else:
            with tf.device(self.device):
                logits, feats = fn(tf.convert_to_tensor(x))
        probs = probabilities(
            np.asarray(logits.numpy(), dtype=np.float32), self.package.manifest.output
        )
        return probs, np.asarray(feats.numpy(), dtype=np.float32)

    def features(self, batch: npt.NDArray[np.float32], layer: str | None = None) -> F32 | None:
        return self.predict_with_features(batch, layer)[1]

    def heatmap(self, batch: npt.NDArray[np.float32]) -> F32 | None:
        if self._cam is None:
            return None
        cam = self._run(self._cam, batch)
        size = self._size or (int(batch.shape[1]), int(batch.shape[2]))
        return normalise_cam(cam, size)

    def memory_bytes(self) -> int:
        return int(
            sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in self._model.weights)
        )

    def close(self) -> None:
        self._model = None
        self._forward = None
        self._cam = None
        self._with_features = {}


def load(package: ModelPackage, device: str) -> LoadedModel:
    _import_tf()
    import keras

    path = package.file(package.manifest.weights)
    tf_device = "/GPU:0" if device == "gpu" else "/CPU:0"
    try:
        model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except (ValueError, OSError, TypeError) as exc:
        raise ModelLoadError(
            f"model '{package.id}': cannot load Keras file '{path}': {exc}"
        ) from exc
    return KerasModel(package, tf_device, model)
