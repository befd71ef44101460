"""Hugging Face transformers adapter (seq2seq text generation), imported lazily.

Draft: the decoding core only; the adapter contract follows once models/adapters/base.py lands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def generate_texts(
    model: Any, tokenizer: Any, texts: Sequence[str], max_new_tokens: int, batch_size: int = 32
) -> list[str]:
    """Greedy drafts for ``texts``, ``batch_size`` at a time, on the model's device."""
    import torch

    device = next(model.parameters()).device
    drafts: list[str] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            chunk = [str(t) for t in texts[start : start + batch_size]]
            enc = tokenizer(chunk, padding=True, return_tensors="pt").to(device)
            ids = model.generate(
                **enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1
            )
            drafts.extend(
                tokenizer.batch_decode(
                    ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
                )
            )
    return drafts
