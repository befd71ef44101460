"""A MONAI bundle folder -> an import plan, mapping only what the manifest can express.

Read: ``configs/metadata.json`` (``network_data_format`` inputs/outputs: labels from the
output's ``channel_def``, the task from its type, channels and spatial size from the input),
``configs/inference.json`` or ``.yaml`` (its ``preprocessing`` transforms, ``inferer`` and
``postprocessing`` activation) and the TorchScript network ``models/model.ts``. The bundle's
Python expressions (``$...``) are never evaluated and MONAI itself is not needed: anything
that cannot be mapped exactly refuses the import, naming the transform and the file.

Mapped transforms (dictionary "d" forms too): ScaleIntensityRange -> window (+ scale),
ScaleIntensity -> auto_window (+ scale), ScaleIntensityRangePercentiles -> auto_window,
NormalizeIntensity with subtrahend and divisor -> normalize, Resize -> resize,
RepeatChannel -> to_channels; loading, channel-first and type casts need no step.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NoReturn

from models.importers.errors import ModelImportError, read_config
from models.importers.plan import ImportPlan, check_manifest

METADATA = "configs/metadata.json"
INFERENCE = ("configs/inference.json", "configs/inference.yaml", "configs/inference.yml")
NETWORK = "models/model.ts"
WEIGHTS = "model.ts"
# Transforms that load, re-order or cast what the workstation already gives the network.
_NO_STEP = {
    "LoadImage",
    "EnsureChannelFirst",
    "AddChannel",
    "EnsureType",
    "ToTensor",
    "CastToType",
    "Identity",
}
# Postprocessing that changes nothing in the probabilities the workstation keeps.
_POST_IGNORED = {
    "AsDiscrete",
    "Invert",
    "SaveImage",
    "EnsureType",
    "ToTensor",
    "ToNumpy",
    "CopyItems",
    "DeleteItems",
}
_SIMPLE_INFERERS = {"SimpleInferer"}
_MODALITY_SYNONYMS = {"MRI": "MR", "XRAY": "DX", "X-RAY": "DX", "CXR": "CR", "ULTRASOUND": "US"}


class _Bundle:
    """The bundle's configs, with ``@id`` references resolved and ``$`` expressions refused."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.metadata = read_config(self._need(METADATA, "the bundle's description"), folder)
        inference = next((folder / rel for rel in INFERENCE if (folder / rel).is_file()), None)
        if inference is None:
            raise ModelImportError(
                folder,
                INFERENCE[0],
                "missing (the bundle's preprocessing and inferer; "
                "configs/inference.yaml is read too)",
            )
        self.inference_rel = inference.relative_to(folder).as_posix()
        self.inference = read_config(inference, folder)
        self.network = self._need(NETWORK, "the TorchScript network")

    def _need(self, rel: str, what: str) -> Path:
        path = self.folder / rel
        if not path.is_file():
            raise ModelImportError(self.folder, rel, f"missing ({what})")
        return path

    def resolve(self, value: Any, where: str, depth: int = 0) -> Any:
        """``@a::b`` (or ``@a#b``) replaced by that config value; ``$...`` refused."""
        if depth > 20:
            raise ModelImportError(self.folder, self.inference_rel, f"{where}: reference loop")
        if isinstance(value, str) and value.startswith("$"):
            raise ModelImportError(
                self.folder,
                self.inference_rel,
                f"{where}: the Python expression {value!r} is not evaluated by the importer "
                "(give the value itself)",
            )
        if isinstance(value, str) and value.startswith("@"):
            node: Any = self.inference
            for part in re.split(r"::|#", value[1:]):
                if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                    node = node[int(part)]
                elif isinstance(node, dict) and part in node:
                    node = node[part]
                else:
                    raise ModelImportError(
                        self.folder, self.inference_rel, f"{where}: reference {value!r} not found"
                    )
            return self.resolve(node, where, depth + 1)
        if isinstance(value, dict):
            return {k: self.resolve(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
        return value

    def transforms(self, key: str) -> list[dict[str, Any]]:
        """The transforms of ``preprocessing``/``postprocessing`` (a Compose or a list)."""
        if key not in self.inference:
            return []
        node = self.resolve(self.inference[key], key)
        if isinstance(node, dict) and _name(node) == "Compose":
            node = node.get("transforms", [])
        if not isinstance(node, list) or not all(isinstance(t, dict) for t in node):
            raise ModelImportError(
                self.folder,
                self.inference_rel,
                f"{key}: expected a Compose or a list of transforms",
            )
        return node


def _name(transform: dict[str, Any]) -> str:
    """The transform's class name: 'monai.transforms.ScaleIntensityRanged' -> the last part."""
    return str(transform.get("_target_", "?")).rsplit(".", 1)[-1]


def _base(name: str, known: set[str]) -> str:
    """The array transform's name for a dictionary transform ('Resized' -> 'Resize')."""
    return name[:-1] if name.endswith("d") and name[:-1] in known else name


def _applies_to(transform: dict[str, Any], key: str) -> bool:
    keys = transform.get("keys")
    if keys is None:
        return True
    return key in ([keys] if isinstance(keys, str) else list(keys))


_MAPPED = {
    "ScaleIntensityRange",
    "ScaleIntensity",
    "ScaleIntensityRangePercentiles",
    "NormalizeIntensity",
    "Resize",
    "RepeatChannel",
}


def _affine_to(b_min: float, b_max: float) -> list[dict[str, Any]]:
    """[0, 1] -> [b_min, b_max] as a scale step (none when already [0, 1])."""
    if (b_min, b_max) == (0.0, 1.0):
        return []
    return [{"op": "scale", "factor": b_max - b_min, "offset": b_min}]


class _Unmappable(ValueError):
    """A transform's arguments that no manifest step expresses."""


def _refuse(reason: str) -> NoReturn:
    raise _Unmappable(reason)


def _map_step(t: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """One MONAI transform as manifest steps; raises _Unmappable (or a bad argument's error)."""
    if name == "ScaleIntensityRange":
        a_min, a_max = float(t["a_min"]), float(t["a_max"])
        b_min, b_max = float(t.get("b_min", 0.0)), float(t.get("b_max", 1.0))
        if a_max <= a_min:
            _refuse("a_max must be above a_min")
        if not t.get("clip", False):
            factor = (b_max - b_min) / (a_max - a_min)
            return [{"op": "scale", "factor": factor, "offset": b_min - a_min * factor}]
        window = {"op": "window", "center": (a_min + a_max) / 2, "width": a_max - a_min}
        return [window, *_affine_to(b_min, b_max)]
    if name == "ScaleIntensity":
        if t.get("factor") is not None or t.get("channel_wise"):
            _refuse("only the min-max form (minv, maxv) can be expressed")
        minv, maxv = float(t.get("minv", 0.0)), float(t.get("maxv", 1.0))
        return [{"op": "auto_window"}, *_affine_to(minv, maxv)]
    if name == "ScaleIntensityRangePercentiles":
        if not t.get("clip", False) or t.get("relative") or t.get("channel_wise"):
            _refuse("only clip=true, relative=false, channel_wise=false can be expressed")
        low, high = float(t["lower"]), float(t["upper"])
        steps = [{"op": "auto_window", "low_percentile": low, "high_percentile": high}]
        return steps + _affine_to(float(t.get("b_min", 0.0)), float(t.get("b_max", 1.0)))
    if name == "NormalizeIntensity":
        if t.get("subtrahend") is None or t.get("divisor") is None:
            _refuse("a per-image normalisation (no subtrahend and divisor) cannot be expressed")
        if t.get("nonzero"):
            _refuse("nonzero=true cannot be expressed")
        return [{"op": "normalize", "mean": t["subtrahend"], "std": t["divisor"]}]
    if name == "Resize":
        size = t.get("spatial_size")
        if not (isinstance(size, list) and len(size) == 2 and all(int(s) > 0 for s in size)):
            _refuse(f"spatial_size {size!r} is not a 2-D [height, width]")
        return [{"op": "resize", "size": [int(size[0]), int(size[1])]}]
    # RepeatChannel
    return [{"op": "to_channels", "n": int(t.get("repeats", 1))}]


def _preprocessing(bundle: _Bundle, key: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    known = _MAPPED | _NO_STEP | {"Spacing", "Orientation"}
    for i, t in enumerate(bundle.transforms("preprocessing")):
        name = _base(_name(t), known)
        if not _applies_to(t, key) or name in _NO_STEP:
            continue
        try:
            if name not in _MAPPED:
                _refuse(
                    "not supported by the importer (it maps "
                    + ", ".join(sorted(_MAPPED))
                    + " and loading/casting transforms)"
                )
            steps += _map_step(t, name)
        except _Unmappable as exc:
            reason = str(exc)
        except (KeyError, TypeError, ValueError) as exc:
            reason = f"bad or missing argument ({type(exc).__name__}: {exc})"
        else:
            continue
        raise ModelImportError(
            bundle.folder,
            bundle.inference_rel,
            f"preprocessing transform {i} '{_name(t)}': {reason}",
        )
    return steps


def _activation(bundle: _Bundle, key: str) -> str:
    activation = "none"
    known = _POST_IGNORED | {"Activations"}
    for i, t in enumerate(bundle.transforms("postprocessing")):
        name = _base(_name(t), known)
        if not _applies_to(t, key) or name in _POST_IGNORED:
            continue
        if name != "Activations":
            raise ModelImportError(
                bundle.folder,
                bundle.inference_rel,
                f"postprocessing transform {i} '{_name(t)}': not supported (the workstation "
                "keeps the network's probabilities; it maps Activations only)",
            )
        if t.get("softmax"):
            activation = "softmax"
        elif t.get("sigmoid"):
            activation = "sigmoid"
    return activation


def _only(mapping: Any, what: str, folder: Path) -> tuple[str, dict[str, Any]]:
    if not isinstance(mapping, dict) or len(mapping) != 1:
        found = ", ".join(mapping) if isinstance(mapping, dict) and mapping else "none"
        raise ModelImportError(
            folder, METADATA, f"network_data_format.{what}: expected exactly one, found {found}"
        )
    ((name, spec),) = mapping.items()
    if not isinstance(spec, dict):
        where = f"network_data_format.{what}.{name}"
        raise ModelImportError(folder, METADATA, f"{where}: not a mapping")
    return str(name), spec


def _labels(spec: dict[str, Any], where: str, folder: Path) -> list[str]:
    defs = spec.get("channel_def")
    if not isinstance(defs, dict) or not defs:
        raise ModelImportError(
            folder,
            METADATA,
            f"{where}.channel_def is missing (the output labels, e.g. "
            '{"0": "background", "1": "spleen"})',
        )
    try:
        ordered = sorted((int(k), str(v)) for k, v in defs.items())
    except ValueError as exc:
        raise ModelImportError(folder, METADATA, f"{where}.channel_def: {exc}") from exc
    if [k for k, _ in ordered] != list(range(len(ordered))):
        raise ModelImportError(folder, METADATA, f"{where}.channel_def: keys must be 0..K-1")
    channels = spec.get("num_channels")
    if channels is not None and int(channels) != len(ordered):
        raise ModelImportError(
            folder,
            METADATA,
            f"{where}: num_channels {channels} but channel_def names {len(ordered)} label(s)",
        )
    return [v for _, v in ordered]


def _modality(spec: dict[str, Any], where: str, folder: Path) -> str:
    raw = str(spec.get("modality", "")).strip().upper()
    code = _MODALITY_SYNONYMS.get(raw, raw)
    if not re.fullmatch(r"[A-Z]{2,3}", code):
        raise ModelImportError(
            folder,
            METADATA,
            f"{where}.modality {spec.get('modality')!r} is missing or not a DICOM modality "
            "code (CT, MR, CR, DX, US...)",
        )
    return code


def _slug(text: str) -> str:
    """The model id from the bundle folder's name (MONAI bundles are named like ids)."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")[:58]
    return slug if len(slug) >= 2 else f"bundle-{slug or 'model'}"


def prepare_bundle(folder: Path) -> ImportPlan:
    """Read and map the bundle in ``folder``; refuses what the manifest cannot express."""
    bundle = _Bundle(folder)
    meta = bundle.metadata
    fmt = meta.get("network_data_format")
    if not isinstance(fmt, dict):
        raise ModelImportError(folder, METADATA, "network_data_format is missing")
    in_key, inp = _only(fmt.get("inputs"), "inputs", folder)
    out_key, out = _only(fmt.get("outputs"), "outputs", folder)
    in_where = f"network_data_format.inputs.{in_key}"
    out_where = f"network_data_format.outputs.{out_key}"
    out_type = str(out.get("type", ""))
    if out_type == "probabilities":
        task = "classification"
    elif out_type == "image" and str(out.get("format", "")) == "segmentation":
        task = "segmentation"
    else:
        raise ModelImportError(
            folder,
            METADATA,
            f"{out_where}.type {out_type!r} (format {out.get('format')!r}): only 'probabilities' "
            "(classification) and 'image' with format 'segmentation' can be imported",
        )
    labels = _labels(out, out_where, folder)
    channels = int(inp.get("num_channels", 1))
    if channels == 3:
        names = [str(v).upper() for v in dict(inp.get("channel_def") or {}).values()]
        if names and names != ["R", "G", "B"] and names != ["RED", "GREEN", "BLUE"]:
            raise ModelImportError(
                folder, METADATA, f"{in_where}: 3 channels {names} that are not R, G, B"
            )
    elif channels != 1:
        raise ModelImportError(
            folder, METADATA, f"{in_where}.num_channels {channels}: only 1 (grey) or 3 (RGB)"
        )
    shape = inp.get("spatial_shape")
    if not isinstance(shape, list) or len(shape) != 2:
        raise ModelImportError(
            folder,
            METADATA,
            f"{in_where}.spatial_shape {shape!r}: only 2-D images ([height, width]) can be "
            "imported",
        )
    steps = _preprocessing(bundle, in_key)
    resizes = [s for s in steps if s["op"] == "resize"]
    notes: list[str] = []
    if all(isinstance(s, int) for s in shape):
        size = [int(shape[0]), int(shape[1])]
    elif resizes:
        size = list(resizes[-1]["size"])
    else:
        raise ModelImportError(
            folder,
            METADATA,
            f"{in_where}.spatial_shape {shape!r} is not fixed and no Resize sets it",
        )
    if not resizes:
        steps.append({"op": "resize", "size": size})
        notes.append(f"images are resized to the network's input {size[0]}x{size[1]}")
    steps.append({"op": "to_channels", "n": channels})
    inferer = bundle.inference.get("inferer")
    if inferer is not None:
        resolved = bundle.resolve(inferer, "inferer")
        name = _name(resolved) if isinstance(resolved, dict) else str(resolved)
        if name not in _SIMPLE_INFERERS:
            raise ModelImportError(
                folder,
                bundle.inference_rel,
                f"inferer '{name}': not supported (the workstation runs the whole image at the "
                "network's input size, as SimpleInferer does)",
            )
    for field, what in (("intended_use", "what it is for"), ("data_source", "its training data")):
        if not meta.get(field) and not (field == "intended_use" and meta.get("description")):
            raise ModelImportError(folder, METADATA, f"'{field}' is missing ({what})")
    name = str(meta.get("name") or folder.name)
    manifest: dict[str, Any] = {
        "id": _slug(folder.name),
        "name": name,
        "version": str(meta.get("version", "")),
        "task": task,
        "framework": "torchscript",
        "modalities": [_modality(inp, in_where, folder)],
        "input": {
            "kind": "image",
            "size": size,
            "channels": channels,
            "layout": "NCHW",
            "color": "rgb" if channels == 3 else "grayscale",
            "frames": "all",
            "preprocessing": steps,
        },
        "output": {"labels": labels, "activation": _activation(bundle, out_key)},
        "weights": WEIGHTS,
        "min_app_version": "0.1.0",
        "intended_use": str(meta.get("intended_use") or meta.get("description")),
        "training_data": str(meta["data_source"]),
        "extra": {"monai_version": meta.get("monai_version")},
    }
    check_manifest(manifest, folder, METADATA)
    files = {WEIGHTS: bundle.network, "import/metadata.json": folder / METADATA}
    files[f"import/{Path(bundle.inference_rel).name}"] = folder / bundle.inference_rel
    return ImportPlan("monai-bundle", folder, manifest, files, notes)
