"""Tiny random checkpoints on disk, in both layouts, and transformers as the oracle."""

from __future__ import annotations

import pytest
import torch
from runtime_helpers import TINY

from runtime.testing import write_random_checkpoint


@pytest.fixture(scope="session")
def tiny_original(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("original"), TINY, seed=1)


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("hf"), TINY, seed=1, layout="hf")


@pytest.fixture(scope="session")
def oracle(tiny_hf):
    """transformers' GptOssForCausalLM loaded from our HF-layout files (fp32, MXFP4
    dequantized by transformers itself)."""
    import transformers

    model = transformers.GptOssForCausalLM.from_pretrained(
        tiny_hf,
        quantization_config=transformers.Mxfp4Config(dequantize=True),
        dtype=torch.float32,
    )
    return model.eval()
