"""Numerics against transformers' GptOssForCausalLM on the same files."""

import pytest
import torch
from runtime_helpers import TINY, oracle_logits, prompt

from runtime import kernels, load_model
from runtime.model import yarn_inv_freq


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


@pytest.mark.parametrize("layout", ["original", "hf"])
def test_fp32_logits_match_transformers(layout, tiny_original, tiny_hf, oracle):
    model = load_model(tiny_original if layout == "original" else tiny_hf, dtype=torch.float32)
    tokens = prompt(70)  # > 4 sliding windows of 16
    ours, theirs = model.logits(tokens), oracle_logits(oracle, tokens)
    assert ours.shape == (70, TINY.vocab_size)
    assert relative_error(ours, theirs) < 1e-5


def test_fp32_logits_match_transformers_past_the_initial_context(tiny_original, oracle):
    """Positions beyond 4,096 exercise YaRN's interpolated frequencies."""
    model = load_model(tiny_original, dtype=torch.float32)
    tokens = prompt(4200, seed=3)
    ours, theirs = model.logits(tokens)[4090:], oracle_logits(oracle, tokens)[4090:]
    assert relative_error(ours, theirs) < 1e-5


def test_yarn_frequencies_match_transformers(oracle):
    inv_freq, concentration = yarn_inv_freq(TINY)
    rotary = oracle.model.rotary_emb
    assert torch.allclose(inv_freq, rotary.inv_freq, rtol=1e-6, atol=0)
    assert concentration == pytest.approx(rotary.attention_scaling)


def test_bf16_stays_close_to_fp32(tiny_original):
    """Typical positions agree to bf16 rounding; a few differ more where bf16 flips a close
    top-4 routing decision, so the bound on every row is on direction, not size. Logits are
    fp32 whatever the weights' dtype: bf16 logits tie and flip greedy picks."""
    tokens = prompt(40, seed=2)
    fp32 = load_model(tiny_original, dtype=torch.float32).logits(tokens)
    bf16 = load_model(tiny_original).logits(tokens)
    assert bf16.dtype == torch.float32
    per_row = (bf16.float() - fp32).abs().amax(-1) / fp32.abs().amax(-1)
    assert per_row.median() < 0.04
    assert torch.nn.functional.cosine_similarity(bf16.float(), fp32, dim=-1).min() > 0.95
    assert (bf16.float().argmax(-1) == fp32.argmax(-1)).float().mean() >= 0.9


def test_both_layouts_load_the_same_model(tiny_original, tiny_hf):
    tokens = prompt(20)
    a = load_model(tiny_original, dtype=torch.float32).logits(tokens)
    b = load_model(tiny_hf, dtype=torch.float32).logits(tokens)
    assert torch.equal(a, b)


def test_experts_stay_packed_and_unpacked_ones_are_bounded(tiny_original, monkeypatch):
    model = load_model(tiny_original, expert_cache_gb=0.0)
    mlp = model.transformer.blocks[0].mlp
    assert mlp.mlp1_blocks.dtype == torch.uint8 and mlp.mlp2_scales.dtype == torch.uint8
    assert mlp.cache is None
    cached = load_model(tiny_original, expert_cache_gb=1e-4)  # ~100 KB: a few experts
    # Without the CPU kernels (no compiler) experts are unpacked per use, within the budget.
    monkeypatch.setattr(kernels, "available", lambda: False)
    list(cached.generate(prompt(400), max_tokens=4, temperature=0))
    cache = cached.transformer.blocks[0].mlp.cache
    assert 0 < cache.used <= cache.budget
    assert len(cache.entries) < TINY.num_experts * TINY.num_hidden_layers
