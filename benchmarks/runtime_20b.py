"""gpt-oss-20b's real shapes (32 experts, ~13 GB on disk): peak RSS while generating
(goal < 16 GB) and decode tokens/s next to the bound memory bandwidth sets.

The bound: one decode step reads the active weights once (MXFP4 experts, bf16 rest), so
tokens/s <= bandwidth / active bytes. Bandwidth is measured with a large torch copy.

    python benchmarks/runtime_20b.py /path/to/cache --decode 8 [--device cuda]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import torch

from runtime import load_model
from runtime.config import PRESETS, bits_per_param_mxfp4
from runtime.testing import write_random_checkpoint


def bandwidth_gb_s(device: str, size: int = 1 << 30) -> float:
    """Read+write bytes per second of a 1 GiB copy (best of 5)."""
    src = torch.empty(size, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(5):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        dst.copy_(src)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size / best / 1e9


def active_bytes() -> float:
    config = PRESETS["20b"]
    h, i = config.hidden_size, config.intermediate_size
    experts = config.num_hidden_layers * config.experts_per_token * 3 * i * h
    dense = config.param_counts()["active"] - experts
    return experts * bits_per_param_mxfp4() / 8 + dense * 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache_dir", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--decode", type=int, default=8)
    parser.add_argument("--expert-cache-gb", type=float, default=1.0)
    args = parser.parse_args()
    path = args.cache_dir / "20b-original"
    if not (path / "config.json").exists():
        print(f"writing random gpt-oss-20b to {path} (once)", flush=True)
        write_random_checkpoint(path, "20b")
    bandwidth = bandwidth_gb_s(args.device)
    bound = bandwidth * 1e9 / active_bytes()
    model = load_model(path, device=args.device, expert_cache_gb=args.expert_cache_gb)
    ids = torch.randint(0, model.config.vocab_size, (args.prompt,)).tolist()
    list(model.generate(ids, max_tokens=args.decode, temperature=0))
    stats = model.last_stats
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS {rss:.2f} GiB (goal < 16 GB)")
    print(f"prefill {stats.prefill_tokens_per_second:.2f} tok/s")
    print(f"decode {stats.decode_tokens_per_second:.2f} tok/s")
    print(
        f"bandwidth {bandwidth:.1f} GB/s, {active_bytes() / 1e9:.2f} GB read per token: "
        f"bound {bound:.1f} tok/s"
    )


if __name__ == "__main__":
    main()
