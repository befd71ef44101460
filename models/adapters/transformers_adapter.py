"""Hugging Face transformers adapter: seq2seq text generation (the report-drafting model).

The package folder is a ``save_pretrained`` folder (config.json, model.safetensors,
generation_config.json, tokenizer.json, tokenizer_config.json) plus manifest.json. Loading is
local-only: the hub's offline switches are set before transformers is first imported and every
``from_pretrained`` call says ``local_files_only=True``, so no network access is ever tried.
transformers and torch are imported inside functions, on first use, never at start-up.

Text models do not fit the image contract's float arrays, so :class:`Seq2SeqModel` adds
``generate(texts) -> list[str]``; ``predict`` takes a sequence of strings and returns list[str].
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from models.adapters.base import LoadedModel, ModelLoadError, module_available
from models.manifest import ModelPackage

FRAMEWORK = "transformers"
REQUIREMENT = "transformers==5.24.0"
_NEEDS = ("transformers", "torch", "tokenizers", "safetensors")
# Read by huggingface_hub when it is imported: set before that, never undone.
_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
DEFAULT_MAX_NEW_TOKENS = 64
DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_INPUT_TOKENS = 256


def _go_offline() -> None:
    os.environ.update(_OFFLINE_ENV)


def is_available() -> bool:
    """transformers with torch, tokenizers and safetensors installed (nothing imported)."""
    return all(module_available(name) for name in _NEEDS)


def gpu_available() -> bool:
    """Whether torch sees a CUDA device (imports torch: call on first real use only)."""
    import torch

    return bool(torch.cuda.is_available())


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's CUDA out-of-memory error (or a RuntimeError saying so); never imports torch."""
    torch = sys.modules.get("torch")
    oom_type = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if isinstance(oom_type, type) and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _int_option(package: ModelPackage, key: str, default: int) -> int:
    value = package.manifest.extra.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 4096:
        raise ModelLoadError(
            f"model '{package.id}': manifest extra.{key} must be an integer in 1..4096, "
            f"not {value!r}"
        )
    return value


def generate_texts(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    max_new_tokens: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS,
) -> list[str]:
    """Greedy drafts for ``texts``, ``batch_size`` at a time, on the model's device.

    Shared by the app and the training script, so the metrics in the manifest are measured
    with exactly this decoding (same batching, same padding).
    """
    import torch

    device = next(model.parameters()).device
    drafts: list[str] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            enc = tokenizer(
                chunk,
                padding=True,
                truncation=True,
                max_length=max_input_tokens,
                return_tensors="pt",
            ).to(device)
            ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
            drafts.extend(
                tokenizer.batch_decode(
                    ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
                )
            )
    return drafts


class Seq2SeqModel(LoadedModel):
    """A seq2seq model and its tokenizer, loaded from a package folder."""

    def __init__(self, package: ModelPackage, device: str, model: Any, tokenizer: Any) -> None:
        super().__init__(package, device)
        self._model: Any = model
        self._tokenizer: Any = tokenizer
        self.max_new_tokens = _int_option(package, "max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
        self.batch_size = _int_option(package, "batch_size", DEFAULT_BATCH_SIZE)
        self.max_input_tokens = _int_option(package, "max_input_tokens", DEFAULT_MAX_INPUT_TOKENS)

    def generate(self, texts: Sequence[str]) -> list[str]:
        """One greedy draft per input text (deterministic), in input order."""
        if self._model is None:
            raise RuntimeError(f"model '{self.id}' was closed")
        items = list(texts)
        for i, text in enumerate(items):
            if not isinstance(text, str):
                raise TypeError(
                    f"model '{self.id}' drafts from text: input {i} is "
                    f"{type(text).__name__}, not str"
                )
        if not items:
            return []
        return generate_texts(
            self._model,
            self._tokenizer,
            items,
            self.max_new_tokens,
            self.batch_size,
            self.max_input_tokens,
        )

    def predict(self, batch: Sequence[str] | npt.NDArray[Any]) -> list[str]:  # type: ignore[override]
        """Text models: a sequence (or 1-D array) of input strings -> their drafts.

        The image contract's float arrays do not fit text (see models_api.md), hence the
        override; it is the same as :meth:`generate`.
        """
        flat = np.asarray(batch, dtype=object).ravel()
        return self.generate([str(x) if isinstance(x, str) else x for x in flat])

    def memory_bytes(self) -> int:
        if self._model is None:
            return 0
        tensors = [*self._model.parameters(), *self._model.buffers()]
        return int(sum(t.numel() * t.element_size() for t in tensors))

    def close(self) -> None:
        model, self._model = self._model, None
        self._tokenizer = None
        if model is not None and self.device.startswith("cuda"):
            import torch

            del model
            torch.cuda.empty_cache()


def _as_seq2seq(package: ModelPackage, model: LoadedModel) -> Seq2SeqModel:
    if not isinstance(model, Seq2SeqModel):
        raise TypeError(
            f"model '{package.id}': expected a transformers Seq2SeqModel, "
            f"got {type(model).__name__}"
        )
    return model


def selftest(package: ModelPackage, model: LoadedModel) -> tuple[bool, float, str]:
    """The package's health check: draft its stored sample, compare with the stored draft.

    Greedy decoding is deterministic, so the comparison is an exact string match; the
    returned "diff" is 1 - word F1 of the draft against the expected one (0.0 when equal), a
    readable measure of how far a failing draft is off.
    """
    from models.report_metrics import token_f1

    spec = package.manifest.selftest
    if spec is None:
        return False, float("nan"), f"model '{package.id}' ships no self-test sample"
    source = package.file(spec.input).read_text(encoding="utf-8").strip()
    expected = package.file(spec.expected).read_text(encoding="utf-8").strip()
    (draft,) = _as_seq2seq(package, model).generate([source])
    diff = 1.0 - token_f1(draft.strip(), expected)
    if draft.strip() == expected:
        return True, 0.0, f"draft matches expected text exactly on device {model.device}"
    return (
        False,
        diff,
        (
            f"draft DIFFERS from expected on device {model.device}: "
            f"got {draft.strip()!r}, expected {expected!r}"
        ),
    )


def evaluate(package: ModelPackage, model: LoadedModel) -> dict[str, float]:
    """exact_match and token_f1 of greedy drafts on the package's validation pairs.

    ``metrics.data_ref`` must be ``package:<file.jsonl>`` (pairs shipped inside the
    package, hashed with it); scoring is the training script's own ``report_metrics.score``.
    """
    from models.report_metrics import read_jsonl, score

    metrics = package.manifest.metrics
    ref = metrics.data_ref if metrics is not None else ""
    kind, _, rel = (ref or "").partition(":")
    if kind != "package" or not rel:
        raise ModelLoadError(
            f"model '{package.id}': metrics.data_ref {ref!r} must name a file in the "
            "package as 'package:<file.jsonl>'"
        )
    pairs = read_jsonl(package.file(rel))
    drafts = _as_seq2seq(package, model).generate([p.source for p in pairs])
    scores = score(drafts, [p.target for p in pairs])
    return {"exact_match": scores.exact_match, "token_f1": scores.token_f1}


def load(package: ModelPackage, device: str) -> Seq2SeqModel:
    """Load the package's seq2seq model on "cpu" or "gpu" (CUDA), from local files only."""
    _go_offline()
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from models.adapters.torch_adapter import configure_threads

    hf_logging.disable_progress_bar()  # no tqdm bars on the app's stderr
    # Same policy as the torch adapter (one intra-op thread unless DOCTORAI_TORCH_THREADS):
    # measured here under shared load, 96 validation drafts took 17-34 s with torch's default
    # 2 threads and 1.6-2.4 s with 1 thread.
    configure_threads(torch)
    if device not in ("cpu", "gpu"):
        raise ModelLoadError(f"model '{package.id}': device must be 'cpu' or 'gpu', not {device!r}")
    folder = package.path
    weights = package.file(package.manifest.weights)
    if not weights.is_file():
        raise ModelLoadError(f"model '{package.id}': weights file '{weights}' is missing")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForSeq2SeqLM.from_pretrained(
            folder, local_files_only=True, use_safetensors=True
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(
            f"model '{package.id}': transformers could not load '{folder}': {exc}"
        ) from exc
    torch_device = "cuda:0" if device == "gpu" else "cpu"
    model = model.to(torch.device(torch_device)).eval()
    return Seq2SeqModel(package, torch_device, model, tokenizer)
