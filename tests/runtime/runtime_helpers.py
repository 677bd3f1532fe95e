"""Helpers shared by the runtime tests (a uniquely named module: tests are not packages)."""

from __future__ import annotations

import dataclasses

import torch

from runtime.config import PRESETS, ModelConfig

# 4 layers (2 sliding, 2 full), 8 experts (top-4), GQA 8/2, window 16: every feature, tiny.
TINY: ModelConfig = PRESETS["tiny"]


def oracle_logits(model, tokens: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0]


def prompt(length: int, seed: int = 0, vocab: int = TINY.vocab_size) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (length,), generator=generator).tolist()


def with_changes(config: ModelConfig, **changes) -> ModelConfig:
    return dataclasses.replace(config, **changes)
