"""Shadow mode: a rollout's candidate model runs beside the model shown, and is only reported.

The centre can roll a candidate out "in shadow" (backend rollouts with ``--shadow``): the
workstation installs it through the signed update channel into the model's shadow slot
(core.inference.model_store), runs it on the same images after the shown result arrived, and sends
its result upstream marked ``shadow`` with the rollout id. The radiologist never sees it, so it
carries no verdict of its own; it carries its latency, its findings and whether they agree with
the shown model's (same decision per image), which is what the centre compares before promoting.

Shadow packages get their own ModelManager (same lazy load and budget rules), so a candidate
with the same id as a shown model never replaces it in the shown manager.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.imaging.model import Instance
from core.inference.manager import Loader, ModelManager, ModelRefusedError
from core.inference.result import InputRef
from models.manifest import ModelPackage, PackageError, load_package

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowModel:
    package: ModelPackage
    rollout_id: int


class ShadowModels:
    """The shadow candidates installed on this workstation, and the manager that runs them."""

    def __init__(
        self,
        models: Sequence[ShadowModel],
        *,
        budget_bytes: int = 1024 * 2**20,
        device: str = "auto",
        loader: Loader | None = None,
        errors: Sequence[PackageError] = (),
    ) -> None:
        self._by_id = {m.package.id: m for m in models}
        self.errors = list(errors)
        self.manager = ModelManager(
            [m.package for m in models], budget_bytes=budget_bytes, device=device, loader=loader
        )

    @classmethod
    def from_dirs(cls, dirs: Sequence[tuple[Path, int]], **kwargs: Any) -> ShadowModels:
        """Packages verified again (hashes) before use; a refused one is logged and skipped."""
        models, errors = [], []
        for folder, rollout_id in dirs:
            try:
                models.append(ShadowModel(load_package(folder, verify_hashes=True), rollout_id))
            except PackageError as exc:
                log.warning("shadow model refused: %s", exc)
                errors.append(exc)
        return cls(models, errors=errors, **kwargs)

    @classmethod
    def from_profile(cls, **kwargs: Any) -> ShadowModels:
        """What ``doctorai sync models`` installed as shadow under ``<profile>/models``."""
        from core.inference.model_store import ModelInstallError, ModelStore
        from core.paths import profile_dir

        try:
            dirs = ModelStore(profile_dir() / "models").shadow_package_dirs()
        except ModelInstallError as exc:
            log.warning("shadow models ignored: %s", exc)
            dirs = []
        return cls.from_dirs(dirs, **kwargs)

    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def get(self, model_id: str) -> ShadowModel | None:
        return self._by_id.get(model_id)

    def run(
        self,
        model_id: str,
        images: Sequence[Any],
        inputs: Sequence[InputRef],
        shown: dict[str, Any],
        *,
        cancel: Callable[[], bool] | None = None,
        instances: Sequence[Instance | None] | None = None,
    ) -> dict[str, Any]:
        """Run the shadow candidate of ``model_id`` on the images of the ``shown`` result
        (``InferenceResult.to_json()``); returns the upstream result item (no patient data).

        The same guards as a shown run, because the item feeds the centre's rollout decision:
        the candidate's self-test (``SelftestRefusedError``) and its intended population,
        checked against ``instances`` (the inputs' indexed instances; without them every
        input counts as "could not be checked"). A population the candidate's manifest
        refuses raises ``ModelRefusedError`` (kind "population"): no item goes upstream."""
        from core.inference.applicability import check_instances
        from core.inference.pipeline import run_images
        from core.results.upstream import result_item
        from core.sync.wire import ResultItem

        shadow = self._by_id.get(model_id)
        if shadow is None:
            raise KeyError(f"no shadow model installed for '{model_id}'")
        self.manager.ensure_selftest(model_id)
        flags = check_instances(shadow.package.manifest.population, instances, len(inputs))
        refused = [f.message for f in flags if f.refused]
        if refused:
            raise ModelRefusedError(
                model_id,
                "population",
                f"its shadow candidate {shadow.package.version} refuses these images "
                f"({'; '.join(refused)})",
            )
        result = run_images(self.manager, model_id, images, inputs, heatmap=False, cancel=cancel)
        guards = [*result.guards, *flags]
        mine = result.to_json()
        base = result_item(mine, "none")
        agrees = mine["labels"] == shown.get("labels") and mine["decisions"] == shown.get(
            "decisions"
        )
        item = ResultItem.model_validate(
            {
                **base,
                "shadow": True,
                "rollout_id": shadow.rollout_id,
                "summary": {
                    **base["summary"],
                    "device": mine["provenance"]["device"],
                    "shown_result_id": shown.get("result_id"),
                    "shown_version": shown.get("model", {}).get("version"),
                    "agrees_with_shown": agrees,
                    # kinds and image indices only: the messages may quote header values
                    "guards": [{"kind": g.kind, "images": g.images} for g in guards],
                },
            }
        )
        return item.model_dump(mode="json")

    def shutdown(self) -> None:
        self.manager.shutdown()
