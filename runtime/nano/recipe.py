"""The one command that reproduces the shipped nano weights:

    python -m runtime.nano.recipe --out /tmp/nano-train

Generates the training transcripts (seed 0, topped up with additions until every digit group
occurs in enough answers) and the held-out tasks (seed 1) through the sandbox, trains from
scratch in two phases, and writes the compact weights and the held-out tasks the package
ships (`runtime/nano/weights/nano.safetensors`, `runtime/nano/heldout.jsonl`). Phase 1
trains on the transcripts without their system and developer messages, where copying numbers
from the question is learned quickly; phase 2 continues from it on the whole transcripts, as
the agent renders them. Same seed and torch version, same weights; each phase resumes when
interrupted.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from runtime.config import PRESETS
from runtime.nano import HELDOUT
from runtime.nano.data import (
    PythonCache,
    questions,
    write_conversations,
    write_headerless,
    write_heldout,
)
from runtime.train import TrainConfig, train

TRAIN_SEED, HELDOUT_SEED = 0, 1
TRAIN_CONVERSATIONS = 6000
HELDOUT_TASKS = 200
COVERAGE_FLOOR = 8  # answers holding each digit group, at least (see `covering_values`)
SHORT = TrainConfig(steps=1000, batch_size=8, lr=3e-3, warmup=30, seed=0, threads=1, save_every=100)
WHOLE = TrainConfig(steps=2400, batch_size=8, lr=2e-3, warmup=30, seed=0, threads=1, save_every=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder (data, checkpoints)")
    parser.add_argument(
        "--weights", type=Path, default=None, help="where to write the compact weights"
    )
    parser.add_argument(
        "--heldout", type=Path, default=HELDOUT, help="where to write the held-out tasks"
    )
    args = parser.parse_args(argv)
    from runtime.nano.compact import WEIGHTS, save_compact

    started = time.perf_counter()
    cache = PythonCache(args.out / "python_outputs.json")
    data = write_conversations(
        args.out / "train.jsonl", TRAIN_CONVERSATIONS, TRAIN_SEED, cache, COVERAGE_FLOOR
    )
    write_heldout(args.heldout, HELDOUT_TASKS, HELDOUT_SEED, cache, exclude=questions(data))
    short = write_headerless(data, args.out / "train-headerless.jsonl")
    train(short, args.out / "phase1", PRESETS["nano"], SHORT)
    trainer = train(data, args.out / "phase2", args.out / "phase1" / "model", WHOLE)
    path = save_compact(args.weights or WEIGHTS, trainer)
    seconds = time.perf_counter() - started
    print(f"wrote {path} in {seconds:.0f} s; final loss {trainer.losses[-1]:.4f}")


if __name__ == "__main__":
    main()
