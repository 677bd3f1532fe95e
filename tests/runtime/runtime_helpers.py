"""Helpers shared by the runtime tests (a uniquely named module: tests are not packages)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from runtime import kernels
from runtime.config import PRESETS, ModelConfig

# 4 layers (2 sliding, 2 full), 8 experts (top-4), GQA 8/2, window 16: every feature, tiny.
TINY: ModelConfig = PRESETS["tiny"]

needs_kernel = pytest.mark.skipif(
    not kernels.available(), reason="needs a C++ compiler and ninja to build the CPU kernels"
)


def oracle_logits(model, tokens: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0]


def prompt(length: int, seed: int = 0, vocab: int = TINY.vocab_size) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (length,), generator=generator).tolist()


def with_changes(config: ModelConfig, **changes) -> ModelConfig:
    return dataclasses.replace(config, **changes)
