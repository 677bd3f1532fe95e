"""Prefill and decode tokens/s and peak RSS: our runtime vs transformers, bf16, batch 1.

The checkpoint has gpt-oss-20b's per-token cost (real shapes, 4 experts per layer, all
active), written once to CACHE_DIR in the Hugging Face layout so both sides load the same
files. Each side runs in its own subprocess so its peak RSS is its own.

    python benchmarks/runtime_decode.py /path/to/cache --prompt 64 --decode 16
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def prompt_ids(length: int, vocab: int) -> list[int]:
    return torch.randint(0, vocab, (length,), generator=torch.Generator().manual_seed(0)).tolist()


def run_ours(path: Path, prompt: int, decode: int, expert_cache_gb: float | None) -> dict:
    from runtime import load_model

    start = time.perf_counter()
    model = load_model(path, expert_cache_gb=expert_cache_gb)
    load_seconds = time.perf_counter() - start
    ids = prompt_ids(prompt, model.config.vocab_size)
    # Warm up (fills the expert cache the way a long generation would), then measure.
    list(model.generate(ids, max_tokens=2, temperature=0))
    model.reset()
    out = list(model.generate(ids, max_tokens=decode, temperature=0))
    stats = model.last_stats
    return {
        "side": "ours",
        "load_s": load_seconds,
        "prefill_tok_s": stats.prefill_tokens_per_second,
        "decode_tok_s": stats.decode_tokens_per_second,
        "generated": len(out),
        "peak_rss_gib": peak_rss_gib(),
    }


def run_transformers(path: Path, prompt: int, decode: int) -> dict:
    from transformers import GptOssForCausalLM, Mxfp4Config

    start = time.perf_counter()
    model = GptOssForCausalLM.from_pretrained(
        path, quantization_config=Mxfp4Config(dequantize=True), dtype=torch.bfloat16
    ).eval()
    load_seconds = time.perf_counter() - start
    ids = torch.tensor([prompt_ids(prompt, model.config.vocab_size)])
    with torch.no_grad():
        model(ids[:, :8], use_cache=True)  # warm up
        start = time.perf_counter()
        out = model(ids, use_cache=True)
        prefill_seconds = time.perf_counter() - start
        cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        start = time.perf_counter()
        for _ in range(decode - 1):
            out = model(token, past_key_values=cache, use_cache=True)
            cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        decode_seconds = time.perf_counter() - start
    return {
        "side": "transformers",
        "load_s": load_seconds,
        "prefill_tok_s": prompt / prefill_seconds,
        "decode_tok_s": (decode - 1) / decode_seconds,
        "generated": decode,
        "peak_rss_gib": peak_rss_gib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache_dir", type=Path)
    parser.add_argument("--preset", default="20b-4experts")
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--decode", type=int, default=16)
    parser.add_argument(
        "--expert-cache-gb", type=float, help="unpacked-expert cache (default: the runtime's)"
    )
    parser.add_argument("--side", choices=["ours", "transformers"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = args.cache_dir / f"{args.preset}-hf"
    torch.set_grad_enabled(False)
    if args.side == "ours":
        print(json.dumps(run_ours(path, args.prompt, args.decode, args.expert_cache_gb)))
        return
    if args.side == "transformers":
        print(json.dumps(run_transformers(path, args.prompt, args.decode)))
        return
    if not (path / "config.json").exists():
        from runtime.testing import write_random_checkpoint

        print(f"writing {args.preset} to {path} (once)", flush=True)
        write_random_checkpoint(path, args.preset, layout="hf")
    results = {}
    for side in ("ours", "transformers"):
        command = [sys.executable, __file__, str(args.cache_dir), "--side", side]
        command += ["--preset", args.preset, "--prompt", str(args.prompt)]
        command += ["--decode", str(args.decode)]
        if args.expert_cache_gb is not None:
            command += ["--expert-cache-gb", str(args.expert_cache_gb)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[side] = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(results[side]), flush=True)
    ours, theirs = results["ours"], results["transformers"]
    print(f"{'':14}{'prefill tok/s':>15}{'decode tok/s':>14}{'peak RSS GiB':>14}")
    for row in (ours, theirs):
        print(
            f"{row['side']:14}{row['prefill_tok_s']:15.2f}{row['decode_tok_s']:14.2f}"
            f"{row['peak_rss_gib']:14.2f}"
        )
    print(
        f"ratio ours/transformers: decode {ours['decode_tok_s'] / theirs['decode_tok_s']:.2f}x, "
        f"prefill {ours['prefill_tok_s'] / theirs['prefill_tok_s']:.2f}x, "
        f"peak RSS {ours['peak_rss_gib'] / theirs['peak_rss_gib']:.2f}x"
    )


if __name__ == "__main__":
    main()
