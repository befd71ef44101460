"""Train the report-drafting model: a tiny T5 and its own tokenizer, from scratch, on CPU.

    .venv/bin/python -m models.training.train_report_t5 [--out models/zoo/report-drafter]

Steps: generate finding->impression pairs (``report_pairs``), train a byte-exact BPE
tokenizer on the training pairs, train a small ``T5ForConditionalGeneration`` with AdamW,
save config + safetensors + generation config + tokenizer, score greedy drafts on the
validation pairs (shipped in the package as ``validation.jsonl``) and write the manifest
with the measured metrics and the SHA-256 of every file. About 5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer
from transformers import (
    GenerationConfig,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from models.report_metrics import Pair, score
from models.training.report_manifest import VALIDATION_FILE, write_package_manifest
from models.training.report_pairs import train_val_split, write_jsonl

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "models" / "zoo" / "report-drafter"
SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2: T5's own convention
MAX_NEW_TOKENS = 64
EVAL_BATCH = 32  # recorded in the manifest: the app decodes with the same batching
Encoded = tuple[list[int], list[int]]


def build_tokenizer(texts: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """BPE over metaspace words; a number is one pre-token, so common sizes become one token.

    Whole-number tokens make copying a size a single attention hop for this tiny model
    (digit-by-digit copying was measured far less accurate); rare numbers still fall back to
    digit pieces, so no input is ever out of vocabulary.
    """
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(),
            pre_tokenizers.Digits(individual_digits=False),
            pre_tokenizers.Punctuation(),
        ]
    )
    tok.decoder = decoders.Metaspace()
    trainer = BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS), min_frequency=2)
    tok.train_from_iterator(texts, trainer)
    eos = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos)]
    )
    for expected, name in enumerate(SPECIALS):
        if tok.token_to_id(name) != expected:
            raise RuntimeError(f"special token {name!r} did not get id {expected}")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def build_model(vocab_size: int) -> T5ForConditionalGeneration:
    """A T5 about 1/60 the size of t5-small: 2+2 layers, d_model 128."""
    config = T5Config(
        vocab_size=vocab_size,
        d_model=128,
        d_kv=32,
        d_ff=512,
        num_heads=4,
        num_layers=2,
        num_decoder_layers=2,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=64,
        dropout_rate=0.0,
        feed_forward_proj="relu",
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return T5ForConditionalGeneration(config)


def _encode(tokenizer: PreTrainedTokenizerFast, pairs: Sequence[Pair]) -> list[Encoded]:
    """Tokenise once up front: re-tokenising every step cost a tenth of the step time."""
    sources = tokenizer([p.source for p in pairs]).input_ids
    targets = tokenizer([p.target for p in pairs]).input_ids
    return list(zip(sources, targets, strict=True))


def _pad(rows: Sequence[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def _batch(rows: Sequence[Encoded]) -> dict[str, torch.Tensor]:
    input_ids = _pad([r[0] for r in rows], 0)
    return {
        "input_ids": input_ids,
        "attention_mask": (input_ids != 0).long(),
        "labels": _pad([r[1] for r in rows], -100),
    }


def train(
    model: T5ForConditionalGeneration,
    tokenizer: PreTrainedTokenizerFast,
    pairs: Sequence[Pair],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> list[float]:
    """AdamW with linear warm-up and cosine decay; returns the loss every 100 steps."""
    rng = random.Random(seed)
    encoded = _encode(tokenizer, pairs)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    order: list[Encoded] = []
    losses: list[float] = []
    running = 0.0
    model.train()
    for step in range(steps):
        if len(order) < batch_size:
            order = list(encoded)
            rng.shuffle(order)
        batch, order = order[:batch_size], order[batch_size:]
        loss = model(**_batch(batch)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        scheduler.step()
        optimiser.zero_grad(set_to_none=True)
        running += loss.item()
        if (step + 1) % 100 == 0:
            losses.append(running / 100)
            print(f"step {step + 1}/{steps} loss {running / 100:.4f}", flush=True)
            running = 0.0
    model.eval()
    return losses


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--n-val", type=int, default=300)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--vocab-size", type=int, default=1000)
    args = parser.parse_args(argv)

    from models.adapters.transformers_adapter import generate_texts  # same decoding as the app

    started = time.perf_counter()
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    train_pairs, val_pairs = train_val_split(args.n_train, args.n_val, args.seed)
    tokenizer = build_tokenizer(
        [p.source for p in train_pairs] + [p.target for p in train_pairs], args.vocab_size
    )
    model = build_model(len(tokenizer))
    losses = train(
        model,
        tokenizer,
        train_pairs,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
    )
    train_seconds = time.perf_counter() - started

    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=0,
        eos_token_id=1,
        pad_token_id=0,
        do_sample=False,
        num_beams=1,
        max_new_tokens=MAX_NEW_TOKENS,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_jsonl(val_pairs, out / VALIDATION_FILE)

    predictions = generate_texts(
        model, tokenizer, [p.source for p in val_pairs], MAX_NEW_TOKENS, batch_size=EVAL_BATCH
    )
    scores = score(predictions, [p.target for p in val_pairs])
    selftest = next(
        (p for p, pred in zip(val_pairs, predictions, strict=True) if pred == p.target),
        val_pairs[0],
    )
    selftest_output = predictions[val_pairs.index(selftest)]
    report: dict[str, Any] = {
        "seed": args.seed,
        "train_seconds": round(train_seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "lr": args.lr,
        "losses_every_100_steps": [round(x, 4) for x in losses],
        "steps": args.steps,
        "final_loss": losses[-1] if losses else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "n_train": len(train_pairs),
        "n_val": scores.n,
        "exact_match": scores.exact_match,
        "token_f1": scores.token_f1,
        "max_new_tokens": MAX_NEW_TOKENS,
        "batch_size_eval": EVAL_BATCH,
        "selftest_input": selftest.source,
        "selftest_output": selftest_output,
    }
    print(json.dumps(report, indent=2))
    manifest = write_package_manifest(out, report)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({len(manifest.files)} files, {size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
