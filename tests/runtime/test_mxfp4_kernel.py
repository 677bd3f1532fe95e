"""The fused MXFP4 CPU kernels: same numbers as unpack + F.linear, used on the CPU, optional."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from runtime_helpers import needs_kernel, prompt

from runtime import kernels, load_model
from runtime.mxfp4 import dequantize


def random_expert(rows: int, cols: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 256, (rows, cols // 32, 16), dtype=torch.uint8, generator=generator)
    scales = torch.randint(118, 134, (rows, cols // 32), dtype=torch.uint8, generator=generator)
    bias = torch.randn(rows, generator=generator)
    return blocks, scales, bias, generator


@needs_kernel
@pytest.mark.parametrize("tokens", [1, 3, 8, 11])
@pytest.mark.parametrize("rows, cols", [(1, 32), (37, 96), (129, 320)])
def test_kernel_matches_unpack_then_linear_in_fp32(tokens, rows, cols):
    blocks, scales, bias, generator = random_expert(rows, cols, seed=rows + tokens)
    x = torch.randn(tokens, cols, generator=generator)
    expected = F.linear(x, dequantize(blocks, scales, torch.float32), bias)
    out = kernels.mxfp4_linear(x, blocks, scales, bias)
    assert out.dtype == torch.float32 and out.shape == (tokens, rows)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
    no_bias = kernels.mxfp4_linear(x, blocks, scales, None)
    torch.testing.assert_close(no_bias + bias, out, rtol=1e-5, atol=1e-5 * out.abs().max().item())


@needs_kernel
def test_bf16_input_is_computed_in_fp32_and_returned_in_bf16():
    blocks, scales, bias, generator = random_expert(53, 256, seed=0)
    x, bias = torch.randn(3, 256, generator=generator).bfloat16(), bias.bfloat16()
    out = kernels.mxfp4_linear(x, blocks, scales, bias)
    assert out.dtype == torch.bfloat16
    expected = F.linear(x.float(), dequantize(blocks, scales, torch.float32), bias.float())
    # One bf16 rounding of the fp32 result, nothing more.
    torch.testing.assert_close(out.float(), expected, rtol=2**-8, atol=1e-5)


@needs_kernel
def test_shape_mismatch_is_an_error_not_a_crash():
    blocks, scales, bias, _ = random_expert(5, 64, seed=0)
    with pytest.raises(RuntimeError, match="shapes disagree"):
        kernels.mxfp4_linear(torch.zeros(1, 96), blocks, scales, bias)


def test_no_kernels_env_falls_back_to_pytorch(tiny_original):
    code = (
        "import warnings, torch; warnings.simplefilter('error');"
        "from runtime import kernels, load_model;"
        "assert not kernels.available();"
        f"model = load_model({str(tiny_original)!r}, dtype=torch.float32);"
        "assert model.transformer.blocks[0].mlp.cache is not None;"
        "print(model.logits([1, 2, 3]).shape)"
    )
    env = {**os.environ, "OSS_AGENT_NO_KERNELS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "torch.Size([3, " in result.stdout


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpu_forward_runs_each_moe_layer_as_one_kernel_call_like_the_pytorch_path(
    tiny_original, monkeypatch, dtype
):
    """fp32 models keep fp32 activations in the kernel (same numbers as unpack + F.linear);
    bf16 models quantize them to int8 per block of 32 and stay within a few percent."""
    model = load_model(tiny_original, dtype=dtype)
    assert model.transformer.blocks[0].mlp.cache is None  # no unpacked copies by default
    calls = []
    real = kernels.moe_block
    monkeypatch.setattr(kernels, "moe_block", lambda *a: calls.append(1) or real(*a))
    tokens = prompt(40)  # 40 tokens over 8 experts: several tokens per expert and pass
    fused = model.logits(tokens)
    assert len(calls) == len(model.transformer.blocks)
    monkeypatch.setattr(kernels, "available", lambda: False)
    calls.clear()
    reference = model.logits(tokens)
    assert not calls
    if dtype == torch.float32:
        torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-5)
    else:
        error = (fused - reference.float()).abs().amax(-1) / reference.float().abs().amax(-1)
        assert error.median() < 0.04


def test_the_kernel_builds_in_ci():
    """Outside CI a machine without a compiler falls back (and the tests above are skipped);
    CI has one, so there the kernel must build."""
    if os.environ.get("CI"):
        assert kernels.available(), "the MXFP4 CPU kernel did not build in CI"
