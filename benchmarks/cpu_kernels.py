"""Per-step cost of one gpt-oss-20b layer on the CPU: the previous path vs the C++ kernels.

All at gpt-oss-20b's shapes, in one process, best of `--repeat` (the machine is shared):
- MoE (4 active experts): one fused-kernel call per expert and matrix, plus eager SwiGLU
  and sums (before) vs the whole layer in one call, int8 activations (bf16 models) or fp32
  (fp32 models);
- projections (qkv 5120 x 2880, unembedding 201088 x 2880): bf16 F.linear vs the bf16
  kernel (fp32 activations, fp32 result);
- decode attention at `--context` tokens: the eager path over every allocated cache slot
  (256) vs the kernel over the used cells.

    python benchmarks/cpu_kernels.py [--threads 2] [--repeat 5] [--context 100]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from runtime import kernels
from runtime.config import PRESETS
from runtime.model import Attention
from runtime.moe import swiglu


def best_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def random_experts(experts: int, hidden: int, intermediate: int) -> dict[str, torch.Tensor]:
    def packed(rows: int, cols: int):
        blocks = torch.randint(0, 256, (experts, rows, cols // 32, 16), dtype=torch.uint8)
        return blocks, torch.randint(118, 124, (experts, rows, cols // 32), dtype=torch.uint8)

    mlp1_blocks, mlp1_scales = packed(2 * intermediate, hidden)
    mlp2_blocks, mlp2_scales = packed(hidden, intermediate)
    return {
        "mlp1_blocks": mlp1_blocks,
        "mlp1_scales": mlp1_scales,
        "mlp1_bias": torch.randn(experts, 2 * intermediate).bfloat16(),
        "mlp2_blocks": mlp2_blocks,
        "mlp2_scales": mlp2_scales,
        "mlp2_bias": torch.randn(experts, hidden).bfloat16(),
    }


def moe_per_expert(x, experts, weights, packed) -> torch.Tensor:
    """The previous path: two kernel calls per expert, SwiGLU and the sums in eager ops."""
    out = torch.zeros_like(x)
    for e in experts.unique().tolist():
        token, slot = torch.where(experts == e)
        h = kernels.mxfp4_linear(
            x[token], packed["mlp1_blocks"][e], packed["mlp1_scales"][e], packed["mlp1_bias"][e]
        )
        y = kernels.mxfp4_linear(
            swiglu(h, 7.0),
            packed["mlp2_blocks"][e],
            packed["mlp2_scales"][e],
            packed["mlp2_bias"][e],
        )
        out[token] += y * weights[token, slot].unsqueeze(-1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--context", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not kernels.available():
        raise SystemExit("the CPU kernels did not build; nothing to compare")
    c = PRESETS["20b"]
    h, i = c.hidden_size, c.intermediate_size
    rows = []

    packed = random_experts(4, h, i)
    for tokens in (1, 64):
        x = torch.randn(tokens, h).bfloat16()
        experts = torch.stack([torch.randperm(4) for _ in range(tokens)])
        weights = torch.softmax(torch.randn(tokens, 4), dim=-1)
        before = partial(moe_per_expert, x, experts, weights.bfloat16(), packed)
        layer = partial(kernels.moe_experts, x.float(), experts, weights, packed, 7.0)
        rows.append(
            (
                f"MoE layer, {tokens} token(s), 4 experts",
                best_ms(before, args.repeat),
                best_ms(partial(layer, False), args.repeat),
                best_ms(partial(layer, True), args.repeat),
            )
        )

    for name, shape, token_counts in (
        ("qkv projection", (c.qkv_dim, h), (1, 64)),
        ("unembedding", (c.vocab_size, h), (1,)),
    ):
        weight = torch.randn(shape).bfloat16()
        for tokens in token_counts:
            x = torch.randn(tokens, h)
            repeat = args.repeat if tokens == 1 else max(1, args.repeat // 2)
            rows.append(
                (
                    f"{name}, {tokens} token(s)",
                    best_ms(partial(F.linear, x.bfloat16(), weight), repeat),
                    best_ms(partial(kernels.linear_bf16, x, weight, None), repeat),
                    None,
                )
            )

    d, kv, heads, slots = c.head_dim, c.num_key_value_heads, c.num_attention_heads, 256
    attention = Attention(c, 1, None, None, None, torch.randn(heads).bfloat16())
    q = torch.randn(1, heads, d)
    keys, values = torch.randn(slots, kv, d).bfloat16(), torch.randn(slots, kv, d).bfloat16()
    key_pos = torch.full((slots,), -1)
    key_pos[: args.context] = torch.arange(args.context)
    position = torch.tensor([args.context - 1])
    visible = (key_pos >= 0) & (key_pos <= position.unsqueeze(-1))
    used = slice(0, args.context)
    rows.append(
        (
            f"decode attention, {args.context} of {slots} slots used",
            best_ms(lambda: attention._attend(q.bfloat16(), keys, values, visible), args.repeat),
            best_ms(
                lambda: kernels.attention(
                    q, keys[used], values[used], key_pos[used], position, attention.sinks, None
                ),
                args.repeat,
            ),
            None,
        )
    )

    print(f"gpt-oss-20b shapes, {args.threads} threads, best of {args.repeat} (ms)")
    print(f"{'':44}{'before':>10}{'kernel':>10}{'fp32 act.':>10}{'speed-up':>10}")
    for name, before, after, exact in rows:
        exact_text = f"{exact:10.2f}" if exact is not None else f"{'':10}"
        print(f"{name:44}{before:10.2f}{after:10.2f}{exact_text}{before / after:9.1f}x")


if __name__ == "__main__":
    main()
