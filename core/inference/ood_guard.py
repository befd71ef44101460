"""The out-of-distribution guard of a run: score the features the model produced with its
predictions against the package's reference (models.ood) and flag the images above threshold.

A reference is read once per package (keyed by the package hash, so a refitted package is read
again) and scoring is a few small matrix products, so the guard costs well under a millisecond
per batch; ``python -m benchmarks ood`` measures it against a run without it.
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt

from core.inference.result import GuardFlag
from models import ood
from models.manifest import ModelPackage

_LOCK = threading.Lock()
_REFERENCES: dict[tuple[str, str], ood.OodReference] = {}
_MAX_REFERENCES = 32
_LISTED = 5  # images named one by one in the message; the rest are counted


def feature_layer(package: ModelPackage) -> str | None:
    """The layer the adapter must return with its predictions (None = penultimate)."""
    spec = package.manifest.ood
    if spec is None:
        return None
    return "logits" if spec.method == "energy" else spec.layer


def reference(package: ModelPackage) -> ood.OodReference:
    """The package's OOD reference, read from its (hash-verified) file once per package hash."""
    spec = package.manifest.ood
    if spec is None:
        raise ood.OodReferenceError(f"model '{package.id}' has no ood section")
    key = (str(package.path), package.package_hash)
    with _LOCK:
        found = _REFERENCES.get(key)
    if found is not None:
        return found
    loaded = ood.load(package.file(spec.reference))
    if loaded.method != spec.method:
        raise ood.OodReferenceError(
            f"model '{package.id}': manifest ood.method is '{spec.method}', "
            f"its reference file holds '{loaded.method}'"
        )
    with _LOCK:
        if len(_REFERENCES) >= _MAX_REFERENCES:
            _REFERENCES.pop(next(iter(_REFERENCES)))
        _REFERENCES[key] = loaded
    return loaded


def _describe(package: ModelPackage, idx: list[int], scores: npt.NDArray[np.float32]) -> str:
    spec = package.manifest.ood
    assert spec is not None
    threshold = f"threshold {spec.threshold:.1f}"
    what = f"unlike the training data of {package.id}"
    if len(scores) == 1:
        return f"the image is {what} (OOD score {float(scores[0]):.1f} > {threshold})"
    if len(idx) == 1:
        i = idx[0]
        return f"image {i + 1} is {what} (OOD score {float(scores[i]):.1f} > {threshold})"
    named = ", ".join(f"image {i + 1} ({float(scores[i]):.1f})" for i in idx[:_LISTED])
    more = f" and {len(idx) - _LISTED} more" if len(idx) > _LISTED else ""
    return (
        f"{len(idx)} of {len(scores)} images are {what}: {named}{more} (OOD scores > {threshold})"
    )


def _unscored(package: ModelPackage, idx: list[int], n: int) -> str:
    """The message for images whose OOD score is NaN or inf (features the model produced that
    the reference cannot measure): unknown is not "in distribution"."""
    what = f"like the training data of {package.id}"
    if n == 1:
        return (
            f"the OOD score of the image could not be computed (NaN or inf): whether it is "
            f"{what} is unknown"
        )
    named = ", ".join(f"image {i + 1}" for i in idx[:_LISTED])
    more = f" and {len(idx) - _LISTED} more" if len(idx) > _LISTED else ""
    return (
        f"the OOD score of {named}{more} could not be computed (NaN or inf): whether "
        f"{'it is' if len(idx) == 1 else 'they are'} {what} is unknown"
    )


def check(package: ModelPackage, features: npt.NDArray[np.float32]) -> GuardFlag | None:
    """A GuardFlag(kind="ood") naming the images whose score is above the manifest threshold
    or could not be computed (NaN, inf: never taken as in distribution), ``images`` 0-based,
    the message 1-based as a reader counts; None when no image is flagged.

    ``details`` carries every image's score (None where it could not be computed), so the
    audit event and JSON show how far each one was from the threshold."""
    spec = package.manifest.ood
    if spec is None:
        return None
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf features: flagged below
        scores = ood.score(reference(package), features)
    flagged = [int(i) for i in np.flatnonzero(~(scores <= spec.threshold))]  # NaN is flagged
    if not flagged:
        return None
    finite = np.isfinite(scores)
    over = [i for i in flagged if finite[i]]
    unscored = [i for i in flagged if not finite[i]]
    messages = []
    if over:
        messages.append(_describe(package, over, scores))
    if unscored:
        messages.append(_unscored(package, unscored, len(scores)))
    return GuardFlag(
        kind="ood",
        message="; ".join(messages),
        images=flagged,
        details={
            "method": spec.method,
            "threshold": float(spec.threshold),
            "scores": [round(float(s), 3) if np.isfinite(s) else None for s in scores],
        },
    )
