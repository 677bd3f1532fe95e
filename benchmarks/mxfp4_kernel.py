"""One gpt-oss-20b expert matvec (mlp1: 5760 x 2880) on the CPU: the fused MXFP4 kernel vs
unpacking then F.linear vs an already unpacked bf16 weight (the expert cache's best case).

    python benchmarks/mxfp4_kernel.py [--tokens 1] [--repeat 20]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from runtime import kernels
from runtime.mxfp4 import dequantize


def best_ms(fn: Callable[[], torch.Tensor], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    rows, cols = 5760, 2880
    generator = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, 256, (rows, cols // 32, 16), dtype=torch.uint8, generator=generator)
    scales = torch.randint(118, 126, (rows, cols // 32), dtype=torch.uint8, generator=generator)
    bias = torch.randn(rows, generator=generator).bfloat16()
    x = torch.randn(args.tokens, cols, generator=generator).bfloat16()
    unpacked = dequantize(blocks, scales, torch.bfloat16)

    with torch.no_grad():
        results = {
            "dequantize + F.linear": best_ms(
                lambda: F.linear(x, dequantize(blocks, scales, torch.bfloat16), bias), args.repeat
            ),
            "unpacked bf16 F.linear": best_ms(lambda: F.linear(x, unpacked, bias), args.repeat),
        }
        if kernels.available():
            results["fused kernel"] = best_ms(
                lambda: kernels.mxfp4_linear(x, blocks, scales, bias), args.repeat
            )
    print(f"{rows}x{cols} expert, {args.tokens} token(s), bf16, {torch.get_num_threads()} threads")
    fused = results.get("fused kernel")
    for name, ms in results.items():
        ratio = f"  ({ms / fused:.1f}x the kernel's time)" if fused else ""
        print(f"  {name:24s} {ms:8.2f} ms{ratio}")


if __name__ == "__main__":
    main()
