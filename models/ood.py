"""Out-of-distribution scores: is this image like the ones the model was trained on?

Two methods, both on what the model computes anyway (no extra network):

- ``mahalanobis``: squared Mahalanobis distance of the model's pooled penultimate features to
  the nearest class mean of its training features, under one shared covariance shrunk towards
  a scaled identity (Lee et al. 2018, class-conditional with a tied covariance). Far from every
  class = unlike the training data.
- ``energy``: the free energy ``-T * logsumexp(logits / T)`` of the raw logits (Liu et al.
  2020); higher = less like the training data.

Written here on purpose, with numpy only: the statistics are a few lines of linear algebra
(means, one covariance, the Ledoit-Wolf shrinkage intensity, one inverse), and a package's
reference must load without scikit-learn in the app. ``tests/models/test_ood.py`` checks the
shrinkage against scikit-learn's ``LedoitWolf`` where it is installed.

The reference lives in a package file (``ood.npz``) named by the manifest's ``ood`` section.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Method = Literal["mahalanobis", "energy"]
FORMAT_VERSION = 1
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


class OodReferenceError(ValueError):
    """An OOD reference file is missing, unreadable or does not fit the model's features."""


@dataclass(frozen=True)
class OodReference:
    """Statistics of a model's training features (mahalanobis) or just the method (energy).

    ``means``: (k, d) class means (k = 1 when fitted without labels); ``precision``: (d, d)
    inverse of the shrunk shared covariance; ``temperature``: for energy."""

    method: Method
    means: F64 | None = None
    precision: F64 | None = None
    shrinkage: float = 0.0
    temperature: float = 1.0

    @property
    def dim(self) -> int | None:
        return None if self.means is None else int(self.means.shape[1])


def ledoit_wolf(centred: F64) -> tuple[F64, float]:
    """Shrunk covariance ``(1 - a) S + a * mu * I`` of centred samples (n, d), and ``a``.

    ``a`` is the Ledoit-Wolf (2004) estimate of the optimal intensity: the sample covariance of
    a few thousand images in 16-96 dimensions is noisy and may be singular (dead ReLU
    channels), the shrunk one is always invertible."""
    n, d = centred.shape
    cov = centred.T @ centred / n
    mu = float(np.trace(cov)) / d
    delta = cov.copy()
    delta[np.diag_indices(d)] -= mu
    delta_sq = float(np.sum(delta**2)) / d
    sq = centred**2
    beta_sq = float(np.sum(sq.T @ sq) / n - np.sum(cov**2)) / (d * n)
    beta_sq = min(beta_sq, delta_sq)
    a = 0.0 if delta_sq == 0.0 else beta_sq / delta_sq
    shrunk = (1.0 - a) * cov
    shrunk[np.diag_indices(d)] += a * mu
    if mu == 0.0:  # constant features: any positive scale keeps the inverse finite
        shrunk[np.diag_indices(d)] += 1e-6
    return shrunk, a


def fit_mahalanobis(
    features: npt.NDArray[Any], labels: npt.NDArray[Any] | None = None
) -> OodReference:
    """Class means and a tied shrunk covariance from training features (n, d)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise OodReferenceError(f"need (n >= 2, d) training features, got shape {x.shape}")
    if labels is None:
        groups = [x]
    else:
        y = np.asarray(labels).ravel()
        if len(y) != len(x):
            raise OodReferenceError(f"{len(y)} labels for {len(x)} feature rows")
        groups = [x[y == c] for c in np.unique(y)]
    means = np.stack([g.mean(axis=0) for g in groups])
    centred = np.concatenate([g - m for g, m in zip(groups, means, strict=True)])
    cov, a = ledoit_wolf(centred)
    precision = np.linalg.inv(cov)
    return OodReference(
        "mahalanobis", means=means, precision=(precision + precision.T) / 2, shrinkage=a
    )


def energy_reference(temperature: float = 1.0) -> OodReference:
    return OodReference("energy", temperature=float(temperature))


def score(reference: OodReference, values: npt.NDArray[Any]) -> F32:
    """(N,) OOD scores, higher = less like the training data.

    ``values``: the pooled features (mahalanobis) or the raw logits (energy), (N, d)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2:
        raise OodReferenceError(f"expected (N, d) values, got shape {x.shape}")
    if reference.method == "energy":
        t = reference.temperature
        z = x / t
        peak = z.max(axis=1, keepdims=True)
        lse = peak[:, 0] + np.log(np.exp(z - peak).sum(axis=1))
        return np.asarray(-t * lse, dtype=np.float32)
    means, precision = reference.means, reference.precision
    assert means is not None
    assert precision is not None
    if x.shape[1] != means.shape[1]:
        raise OodReferenceError(
            f"features have {x.shape[1]} dimensions, the reference {means.shape[1]}"
        )
    dists = np.empty((x.shape[0], means.shape[0]), dtype=np.float64)
    for k, mean in enumerate(means):
        diff = x - mean
        dists[:, k] = np.sum((diff @ precision) * diff, axis=1)  # BLAS, not a 3-way einsum
    return np.asarray(dists.min(axis=1), dtype=np.float32)


def threshold_at(scores: npt.NDArray[Any], quantile: float = 0.95) -> float:
    """The score above which ``1 - quantile`` of in-distribution (validation) images lie."""
    return float(np.quantile(np.asarray(scores, dtype=np.float64), quantile))


def to_bytes(reference: OodReference) -> bytes:
    """The npz a package stores (deterministic bytes for the same statistics)."""
    arrays: dict[str, Any] = {
        "format": np.asarray(FORMAT_VERSION),
        "method": np.asarray(reference.method),
        "shrinkage": np.asarray(reference.shrinkage),
        "temperature": np.asarray(reference.temperature),
    }
    if reference.means is not None and reference.precision is not None:
        arrays["means"] = reference.means
        arrays["precision"] = reference.precision
    # np.savez stamps each member with the current time; a fixed stamp makes a re-run of
    # fit_ood on unchanged data a no-op for git and the package hash
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", _ZIP_TIME), member.getvalue())
    return buffer.getvalue()


def save(reference: OodReference, path: Path) -> None:
    path.write_bytes(to_bytes(reference))


def load(path: Path) -> OodReference:
    """Read a reference written by ``save``; a bad file names itself and the reason."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in data.files}
    except (OSError, ValueError) as exc:
        raise OodReferenceError(f"OOD reference '{path}' cannot be read: {exc}") from exc
    missing = {"format", "method"} - set(arrays)
    if missing:
        raise OodReferenceError(f"OOD reference '{path}' lacks {sorted(missing)}")
    if int(arrays["format"]) != FORMAT_VERSION:
        raise OodReferenceError(
            f"OOD reference '{path}': format {int(arrays['format'])}, "
            f"this app reads {FORMAT_VERSION}"
        )
    method = str(arrays["method"])
    if method == "energy":
        return energy_reference(float(arrays.get("temperature", 1.0)))
    if method != "mahalanobis":
        raise OodReferenceError(f"OOD reference '{path}': unknown method '{method}'")
    if "means" not in arrays or "precision" not in arrays:
        raise OodReferenceError(f"OOD reference '{path}' lacks the means or the precision")
    means = np.asarray(arrays["means"], dtype=np.float64)
    precision = np.asarray(arrays["precision"], dtype=np.float64)
    d = means.shape[1] if means.ndim == 2 else -1
    if precision.shape != (d, d):
        raise OodReferenceError(
            f"OOD reference '{path}': precision {precision.shape} does not match means "
            f"{means.shape}"
        )
    shrinkage = float(arrays.get("shrinkage", 0.0))
    return OodReference("mahalanobis", means=means, precision=precision, shrinkage=shrinkage)
