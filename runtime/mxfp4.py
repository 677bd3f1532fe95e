"""MXFP4: E2M1 values, two per byte (low nibble first), one E8M0 scale per block of 32.

Experts stay in this packed form (4.25 bits/param); `dequantize` unpacks only the experts
a token selected.
"""

from __future__ import annotations

import torch

BLOCK = 32
SCALE_BIAS = 127
# E2M1 codes 0..7 and their negations (sign bit = 8).
FP4_VALUES = (
    0.0,
    0.5,
    1.0,
    1.5,
    2.0,
    3.0,
    4.0,
    6.0,
    -0.0,
    -0.5,
    -1.0,
    -1.5,
    -2.0,
    -3.0,
    -4.0,
    -6.0,
)

_pair_tables: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}


def _byte_table(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[256, 2]: the two values each byte holds, so one lookup unpacks a byte."""
    key = (dtype, device)
    if key not in _pair_tables:
        values = torch.tensor(FP4_VALUES, dtype=torch.float32)
        codes = torch.arange(256)
        pairs = torch.stack([values[codes & 15], values[codes >> 4]], dim=-1)
        _pair_tables[key] = pairs.to(dtype=dtype, device=device)
    return _pair_tables[key]


def dequantize(blocks: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """blocks uint8 [..., rows, cols/32, 16] and scales uint8 [..., rows, cols/32] ->
    [..., rows, cols] in `dtype`. Exact: every value is a small float times a power of two."""
    *lead, groups, half = blocks.shape
    if half * 2 != BLOCK or tuple(scales.shape) != (*lead, groups):
        raise ValueError(
            f"MXFP4 shapes disagree: blocks {tuple(blocks.shape)}, scales {tuple(scales.shape)}"
        )
    values = torch.nn.functional.embedding(blocks.int(), _byte_table(dtype, blocks.device))
    values = values.view(*lead, groups, BLOCK)
    factor = torch.exp2(scales.float() - SCALE_BIAS).to(dtype)
    return (values * factor.unsqueeze(-1)).view(*lead, groups * BLOCK)


def quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[..., rows, cols] float -> (blocks, scales), rounding each value to the nearest E2M1
    after scaling each block of 32 so its largest magnitude fits 6."""
    *lead, cols = weight.shape
    if cols % BLOCK:
        raise ValueError(f"last dimension {cols} is not a multiple of {BLOCK}")
    groups = weight.float().reshape(*lead, cols // BLOCK, BLOCK)
    amax = groups.abs().amax(dim=-1, keepdim=True).clamp_min(2.0**-126)
    exponent = torch.ceil(torch.log2(amax / 6.0)).clamp(-SCALE_BIAS, 127)
    scaled = groups / torch.exp2(exponent)
    table = torch.tensor(FP4_VALUES[:8])
    codes = (scaled.abs().unsqueeze(-1) - table).abs().argmin(dim=-1)
    codes = codes + 8 * (scaled < 0)
    codes = codes.to(torch.uint8).reshape(*lead, cols // BLOCK, BLOCK // 2, 2)
    blocks = codes[..., 0] | (codes[..., 1] << 4)
    scales = (exponent.squeeze(-1) + SCALE_BIAS).to(torch.uint8)
    return blocks, scales
