"""Small TorchScript-able CNNs and the training loop used by the torch zoo models.

Each net exports ``features`` (the Grad-CAM target activations) and ``classify`` (logits from
them) so the torch adapter can compute Grad-CAM on the scripted module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from models.metrics import binary_auc, classification_metrics


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(nn.Module):
    """VGG-style: two 3x3 convs per stage, max-pool between stages, GAP + linear head."""

    def __init__(
        self,
        in_ch: int,
        n_classes: int,
        widths: list[int] | None = None,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_ch
        for i, w in enumerate(widths or [24, 48, 96]):
            if i:
                layers.append(nn.MaxPool2d(2))
            layers += _block(cin, w) + _block(w, w)
            cin = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, n_classes))

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        return out

    @torch.jit.export
    def classify(self, feats: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(feats.mean(dim=(2, 3)))
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))


class _DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.ReLU(inplace=False),
            nn.Conv2d(cin, growth, 3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.net(x)], dim=1)


class TinyDenseNet(nn.Module):
    """DenseNet-style: dense blocks (concatenated features), 1x1-conv + pool transitions."""

    def __init__(
        self, in_ch: int, n_classes: int, growth: int = 12, blocks: list[int] | None = None
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, 2 * growth, 3, padding=1, bias=False)]
        ch = 2 * growth
        blocks = blocks or [3, 3, 3]
        for i, n in enumerate(blocks):
            for _ in range(n):
                layers.append(_DenseLayer(ch, growth))
                ch += growth
            if i < len(blocks) - 1:
                out = ch // 2
                layers += [
                    nn.BatchNorm2d(ch),
                    nn.ReLU(inplace=False),
                    nn.Conv2d(ch, out, 1, bias=False),
                    nn.AvgPool2d(2),
                ]
                ch = out
        layers += [nn.BatchNorm2d(ch), nn.ReLU(inplace=False)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(ch, n_classes)

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        return out

    @torch.jit.export
    def classify(self, feats: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(feats.mean(dim=(2, 3)))
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))


def augment_shift_flip(
    x: torch.Tensor, gen: torch.Generator, shift: int = 2, hflip: bool = True, vflip: bool = False
) -> torch.Tensor:
    """Random translation by up to ``shift`` px (reflect pad + crop) and optional flips."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (shift, shift, shift, shift), mode="reflect")
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    out = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    if hflip:
        flip = torch.rand(n, generator=gen) < 0.5
        out[flip] = out[flip].flip(3)
    if vflip:
        flip = torch.rand(n, generator=gen) < 0.5
        out[flip] = out[flip].flip(2)
    return out


def logits_of(net: nn.Module, x: npt.NDArray[np.float32], batch: int = 512) -> npt.NDArray[Any]:
    net.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            outs.append(net(torch.from_numpy(x[i : i + batch])).numpy())
    return np.concatenate(outs)


def softmax(z: npt.NDArray[Any]) -> npt.NDArray[Any]:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def train(
    net: nn.Module,
    xtr: npt.NDArray[np.float32],
    ytr: npt.NDArray[Any],
    xva: npt.NDArray[np.float32] | None,
    yva: npt.NDArray[Any] | None,
    *,
    epochs: int,
    lr: float,
    batch: int,
    seed: int,
    positive: int | None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    class_weight: bool = False,
    weight_decay: float = 1e-4,
    keep: str = "best",
) -> dict[str, Any]:
    """AdamW + one-cycle LR.

    ``keep="best"``: the weights of the epoch with the best val AUC (or accuracy), so val is a
    selection set. ``keep="last"``: the final epoch's weights, val (if any) only printed; the
    cross-validated recipes use this so no held-out image takes part in any choice.
    """
    if keep not in ("best", "last"):
        raise ValueError(f"keep must be 'best' or 'last', got '{keep}'")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((len(xtr) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    weights = None
    if class_weight:
        counts = np.bincount(ytr.astype(int))
        weights = torch.tensor(len(ytr) / (len(counts) * counts), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr.astype(np.int64))
    best: dict[str, Any] = {"score": -1.0}
    history = []
    start = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), batch):
            idx = perm[i : i + batch]
            xb = xt[idx]
            if augment is not None:
                xb = augment(xb, gen)
            opt.zero_grad()
            loss = loss_fn(net(xb), yt[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        score = float("nan")
        if xva is not None and yva is not None:
            probs = softmax(logits_of(net, xva))
            if positive is not None:
                score = binary_auc(yva == positive, probs[:, positive])
            else:
                score = classification_metrics(yva, probs, None)["accuracy"]
        history.append((epoch, total / len(xt), score))
        print(
            f"epoch {epoch + 1:3d}/{epochs} loss {total / len(xt):.4f} val {score:.4f} "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
        if keep == "last" or score > best["score"]:
            best = {
                "score": score,
                "epoch": epoch + 1,
                "state": {k: v.clone() for k, v in net.state_dict().items()},
            }
    net.load_state_dict(best["state"])
    net.eval()
    return {
        "best_epoch": best["epoch"],
        "best_val_score": best["score"],
        "history": history,
        "train_seconds": round(time.perf_counter() - start, 1),
    }


def export_script(net: nn.Module, path: str) -> None:
    net.eval()
    torch.jit.script(net).save(path)  # type: ignore[no-untyped-call]


class LogitEnsemble(nn.Module):
    """Average of the members' logits, in one TorchScript module with the Grad-CAM split.

    ``features`` concatenates the members' target activations along channels (all members
    share the spatial grid); ``classify`` splits them back and averages the logits, so
    Grad-CAM on the ensemble is the mean of the members' weighted activations.
    """

    def __init__(self, members: Sequence[nn.Module], widths: list[int]) -> None:
        super().__init__()
        if len(members) != len(widths) or not members:
            raise ValueError("LogitEnsemble needs one feature width per member")
        self.members = nn.ModuleList(members)
        self.widths = widths

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        feats: list[torch.Tensor] = []
        for member in self.members:
            feats.append(member.features(x))  # type: ignore[operator]
        return torch.cat(feats, dim=1)

    @torch.jit.export
    def classify(self, feats: torch.Tensor) -> torch.Tensor:
        parts = torch.split(feats, self.widths, dim=1)
        logits: list[torch.Tensor] = []
        for i, member in enumerate(self.members):
            logits.append(member.classify(parts[i]))  # type: ignore[operator]
        return torch.stack(logits).mean(dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))
