"""Prefix reuse over an agent-like run: 5 turns of (generate until a stop token or a budget,
then append a tool's output). Counts the tokens run through the model against the final
context (goal 1.0: every token computed once) and against re-prefilling every turn.

    python benchmarks/runtime_prefix_reuse.py /path/to/cache --preset tiny
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from runtime import load_model
from runtime.testing import write_random_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache_dir", type=Path)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--reply", type=int, default=32, help="max tokens generated per turn")
    parser.add_argument("--tool-output", type=int, default=48)
    args = parser.parse_args()
    path = args.cache_dir / f"{args.preset}-original"
    if not (path / "config.json").exists():
        write_random_checkpoint(path, args.preset)
    model = load_model(path)
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)

    def random_tokens(n: int) -> list[int]:
        return torch.randint(0, vocab, (n,), generator=generator).tolist()

    context = random_tokens(200)  # system + developer + user message
    prefilled = decoded = naive = 0
    for turn in range(args.turns):
        reply = list(model.generate(context, max_tokens=args.reply, seed=turn, stop_tokens=[0]))
        stats = model.last_stats
        prefilled += stats.prefilled
        decoded += stats.generated - 1  # the last token is fed by the next turn's prefill
        naive += stats.prompt_tokens
        print(
            f"turn {turn}: prompt {stats.prompt_tokens}, reused {stats.reused}, "
            f"prefilled {stats.prefilled}, generated {stats.generated}"
        )
        context = context + reply + random_tokens(args.tool_output)
    final = len(model.cached)  # the context the cache holds at the end
    print(f"final context {final} tokens; run through the model: {prefilled} prefilled")
    print(f"+ {decoded} decoded = {prefilled + decoded} ({(prefilled + decoded) / final:.3f}x)")
    print(f"re-prefilling every turn would prefill {naive} ({naive / final:.2f}x)")


if __name__ == "__main__":
    main()
