"""Train the brain lesion segmentation demo (a small 2-D U-Net, torch) on MR-like phantoms and
ship it as ONNX.

    nice .venv/bin/python -m models.training.train_segmentation [--out DIR] [--epochs N]

No real labelled MRI is available here: slices and their lesion masks come from
``models.phantoms.brain_dataset`` (seeded), the generator the brain classifier was trained on.
The network is exported with ``torch.onnx.export`` (opset 17); its output is per-pixel logits
(N, 2, 64, 64) and the ONNX Runtime adapter's ``predict`` applies the softmax over the class axis
(background, lesion). Figures are measured on a separate phantom seed; demo only.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from models import phantoms
from models.segmentation import image_scores, label_maps, mean_dice
from models.training import common

MODEL_ID = "brain-lesion-seg-mri"
TRAIN_SEED, VAL_SEED, N_TRAIN, N_VAL = 311, 412, 1600, 400
SIZE = 64
TOP_K = 12  # an image's lesion score: mean of its 12 most lesion-like pixels (a radius-2 disc)
OPSET = 17
INPUT: dict[str, Any] = {
    "kind": "image",
    "size": [SIZE, SIZE],
    "channels": 1,
    "layout": "NCHW",
    "color": "grayscale",
    "frames": "all",
    "preprocessing": [
        {"op": "auto_window", "low_percentile": 1.0, "high_percentile": 99.0},
        {"op": "resize", "size": [SIZE, SIZE]},
        {"op": "normalize", "mean": 0.4, "std": 0.3},
        {"op": "to_channels", "n": 1},
    ],
}


def _double(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Three poolings (64 -> 8 px), skip connections, bilinear upsampling; logits out."""

    def __init__(self, widths: tuple[int, ...] = (8, 16, 32, 48), n_classes: int = 2) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        cin = 1
        for w in widths:
            self.down.append(_double(cin, w))
            cin = w
        self.up = nn.ModuleList(
            _double(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1))
        )
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Conv2d(widths[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = nn.functional.interpolate(x, size=skip.shape[2:], mode="bilinear")
            x = block(torch.cat([x, skip], dim=1))
        out: torch.Tensor = self.head(x)
        return out


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus soft Dice on the lesion class (lesions are a few % of the pixels)."""
    ce = nn.functional.cross_entropy(logits, target)
    p = torch.softmax(logits, dim=1)[:, 1]
    t = (target == 1).float()
    inter = (p * t).sum()
    return ce + 1.0 - (2.0 * inter + 1.0) / (p.sum() + t.sum() + 1.0)


def predict(net: nn.Module, x: npt.NDArray[np.float32], batch: int = 200) -> npt.NDArray[Any]:
    net.eval()
    with torch.no_grad():
        outs = [
            torch.softmax(net(torch.from_numpy(x[i : i + batch])), dim=1).numpy()
            for i in range(0, len(x), batch)
        ]
    return np.concatenate(outs).astype(np.float32)


def train(
    xtr: npt.NDArray[np.float32],
    mtr: npt.NDArray[np.int64],
    xva: npt.NDArray[np.float32],
    mva: npt.NDArray[Any],
    epochs: int,
    seed: int = 5,
) -> tuple[nn.Module, int, float]:
    """Adam, random flips; the epoch with the best validation Dice is kept."""
    common.seed_everything(seed)
    torch.set_num_threads(2)
    net = UNet()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xt, mt = torch.from_numpy(xtr), torch.from_numpy(mtr)
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, 0, {})
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(order), 32):
            idx = order[i : i + 32]
            xb, mb = xt[idx], mt[idx]
            if torch.rand(1, generator=gen).item() < 0.5:
                xb, mb = xb.flip(-1), mb.flip(-1)
            if torch.rand(1, generator=gen).item() < 0.5:
                xb, mb = xb.flip(-2), mb.flip(-2)
            opt.zero_grad()
            _loss(net(xb), mb).backward()  # type: ignore[no-untyped-call]
            opt.step()
        sched.step()
        score = mean_dice(label_maps(predict(net, xva)) == 1, mva)
        print(f"epoch {epoch + 1}/{epochs}: val Dice {score:.4f}", flush=True)
        if score > best[0]:
            best = (score, epoch + 1, {k: v.clone() for k, v in net.state_dict().items()})
    net.load_state_dict(best[2])
    net.eval()
    return net, best[1], best[0]


def export_onnx(net: nn.Module, path: Path) -> None:
    """Opset 17, dynamic batch; one input 'image' (N, 1, 64, 64), one output 'logits'."""
    torch.onnx.export(
        net.eval(),
        (torch.zeros(1, 1, SIZE, SIZE),),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )


def add_features_output(path: Path, width: int = 48) -> None:
    """Add a second graph output ``features``: the bottleneck (the last encoder block, 8x8 px)
    averaged over space, (N, 48). The ONNX adapter returns it with the predictions, and the
    out-of-distribution reference (models.training.fit_ood) is fitted on it; the logits are
    unchanged."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    graph = model.graph
    if any(o.name == "features" for o in graph.output):
        return
    last = len(UNet().down) - 1
    relus = [n for n in graph.node if n.op_type == "Relu" and f"/down.{last}/" in n.name]
    if not relus:
        raise RuntimeError(f"'{path}': no bottleneck activation (/down.{last}/.../Relu) found")
    bottleneck = relus[-1].output[0]
    graph.node.extend(
        [
            helper.make_node("GlobalAveragePool", [bottleneck], ["features_pooled"]),
            helper.make_node("Flatten", ["features_pooled"], ["features"], axis=1),
        ]
    )
    graph.output.append(
        helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", width])
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def onnx_predict(path: Path, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The shipped file run by ONNX Runtime, softmax over the class axis (what the adapter's
    ``predict`` gives, and the self-test expects)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    z = np.asarray(session.run(["logits"], {"image": x})[0], dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float32)


def image_metrics(
    probs: npt.NDArray[Any], masks: npt.NDArray[Any], threshold: float
) -> dict[str, float]:
    """Image level: 'lesion' when the top-k score passes the threshold."""
    from models.metrics import classification_metrics

    y = np.asarray(masks.reshape(len(masks), -1).any(axis=1), dtype=np.int64)
    scores = image_scores(probs, TOP_K)
    found = classification_metrics(y, scores, 1, threshold)
    return {k: round(v, 4) for k, v in found.items() if k in ("auc", "sensitivity", "specificity")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=common.ZOO / MODEL_ID)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    raw_tr, _, mask_tr = phantoms.brain_dataset(N_TRAIN, TRAIN_SEED, SIZE)
    raw_va, _, mask_va = phantoms.brain_dataset(N_VAL, VAL_SEED, SIZE)
    xtr, xva = common.prep(raw_tr, INPUT, MODEL_ID), common.prep(raw_va, INPUT, MODEL_ID)
    start = time.perf_counter()
    net, best_epoch, _ = train(xtr, mask_tr.astype(np.int64), xva, mask_va, args.epochs)
    seconds = time.perf_counter() - start

    out = common.fresh_dir(args.out)
    export_onnx(net, out / "model.onnx")
    add_features_output(out / "model.onnx")
    probs = onnx_predict(out / "model.onnx", xva)
    pred = label_maps(probs) == 1
    threshold = 0.5
    metrics: dict[str, Any] = {
        "dataset": "synthetic MR-like brain phantoms with lesion masks",
        "split": "val",
        "n": N_VAL,
        "data_ref": f"phantom:brain:seed={VAL_SEED}:n={N_VAL}",
        **image_metrics(probs, mask_va, threshold),
        "threshold_method": "0.5 fixed before training (no tuning on validation data)",
        "scores": {
            "dice_lesion_slices": round(mean_dice(pred, mask_va), 4),
            "dice_all_pixels": round(
                float(2 * (pred & mask_va).sum() / (pred.sum() + mask_va.sum())), 4
            ),
        },
        "note": "generated data; demonstration only. Dice: mean per slice over the slices "
        "with a lesion; image-level figures from the top-k lesion score",
    }
    n_params = sum(p.numel() for p in net.parameters())
    manifest = {
        "id": MODEL_ID,
        "name": "Brain lesion segmentation MRI (2-D U-Net, demo)",
        "version": "1.0.0",
        "task": "segmentation",
        "framework": "onnx",
        "modalities": ["MR"],
        "body_parts": ["BRAIN", "HEAD"],
        "input": INPUT,
        "output": {
            "labels": ["none", "lesion"],
            "positive_label": "lesion",
            "thresholds": {"lesion": threshold},
            "activation": "softmax",
        },
        "weights": "model.onnx",
        "min_app_version": "0.1.0",
        "intended_use": (
            "Demonstration only, trained on synthetic phantoms: outlines an enhancing lesion on "
            "MR-like brain slices so the mask can be reviewed and saved as DICOM SEG. Not "
            "validated on any real image."
        ),
        "demo_only": True,
        "training_data": (
            f"{common.SYNTHETIC_NOTE}: {N_TRAIN} generated MR-like slices with lesion masks "
            f"(models.phantoms.brain_dataset, seed {TRAIN_SEED})"
        ),
        "metrics": metrics,
        "population": {
            "modalities": ["MR"],
            "body_parts": ["BRAIN", "HEAD"],
            "photometric": ["MONOCHROME2"],
            "on_mismatch": "warn",
            "note": "trained on synthetic MR-like phantoms only; real images are out of "
            "distribution",
        },
        "extra": {
            "segmentation": {"top_k": TOP_K, "classes_axis": 1},
            "onnx": {"opset": OPSET, "input": "image", "output": "logits"},
            "parameters": n_params,
            "best_epoch": best_epoch,
            "epochs": args.epochs,
            "train_seconds": round(seconds, 1),
            "trained_on": common.machine(),
        },
    }
    rng = np.random.default_rng(7)
    sample = np.stack([phantoms.brain_slice(rng, lesion)[0] for lesion in (True, False, True)])
    expected = onnx_predict(out / "model.onnx", common.prep(sample, INPUT, MODEL_ID))
    sources = out / "SOURCES.md"
    sources.write_text(_sources_text(n_params, best_epoch, args.epochs, seconds), encoding="utf-8")
    common.finish_package(out, manifest, sample, expected, sources)
    from models.training.fit_ood import fit_package

    fit_package(out)  # ood.npz + the manifest's ood section (phantom train/val features)
    size = (out / "model.onnx").stat().st_size
    print(f"wrote {out}: {n_params} parameters, model.onnx {size} bytes, metrics {metrics}")


def _sources_text(n_params: int, best_epoch: int, epochs: int, seconds: float) -> str:
    return (
        "# How this model was made\n\n"
        "No real data: this model was " + common.SYNTHETIC_NOTE + ".\n\n"
        f"- Data: {N_TRAIN} training and {N_VAL} validation MR-like brain slices (64x64) with "
        "their lesion masks from `models/phantoms.py` (`brain_dataset`, seeds "
        f"{TRAIN_SEED} and {VAL_SEED}); half of the slices carry one enhancing lesion.\n"
        f"- Network: a 2-D U-Net ({n_params} parameters; widths 8-16-32-48, three poolings, "
        "bilinear upsampling), written in `models/training/train_segmentation.py`.\n"
        f"- Training: torch on the CPU, Adam (lr 3e-3, cosine), batch 32, random flips, "
        f"cross-entropy + soft Dice; {epochs} epochs in {seconds:.0f} s, the epoch with the best "
        f"validation Dice kept (epoch {best_epoch}).\n"
        f"- Export: `torch.onnx.export`, opset {OPSET}, per-pixel logits out (the ONNX adapter "
        "applies the softmax over the class axis); the metrics and the self-test's expected "
        "output come from the exported file run by ONNX Runtime.\n"
        "- Out-of-distribution reference: a `features` output (the bottleneck averaged over "
        "space, 48 values) added to the graph; `models.training.fit_ood` fits class means and a "
        "shrunk covariance on the training phantoms and sets the threshold at the 95th "
        "percentile of the validation phantoms (`ood.npz`, the manifest's `ood`).\n"
        "- Reproduce: `nice .venv/bin/python -m models.training.train_segmentation`.\n"
    )


if __name__ == "__main__":
    main()
