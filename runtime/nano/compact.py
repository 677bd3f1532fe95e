"""The compact form the nano weights ship in: only the nonzero embedding rows.

A gpt-oss checkpoint's embedding and unembedding are [201088, hidden]; the nano model uses
a few thousand of those rows and the others are exactly zero. The compact file keeps the
used rows and their token ids (`vocab`) plus every other tensor as stored in a standard
checkpoint, and reads like a checkpoint folder: `runtime.load.build` takes it directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from runtime.config import ModelConfig

WEIGHTS = Path(__file__).parent / "weights" / "nano.safetensors"
ROWS = ("embedding.weight", "unembedding.weight")


def save_compact(path: str | Path, trainer) -> Path:
    """Write a trainer's weights in the compact form (stored dtypes, nonzero rows only)."""
    from runtime.train import standard_tensors

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = standard_tensors(trainer.model_config, trainer.masters, trainer.vocab)
    for name in ROWS:
        tensors[name] = tensors[name][trainer.vocab].contiguous()
    tensors["vocab"] = trainer.vocab.to(torch.int32)
    metadata = {"config": json.dumps(trainer.model_config.to_original())}
    save_file(tensors, str(path), metadata=metadata)
    return path


class CompactCheckpoint:
    """A compact file read through the `Checkpoint` interface (original layout)."""

    layout = "original"

    def __init__(self, path: str | Path = WEIGHTS) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(
                f"{self.path}: the nano weights are missing; reinstall oss-agent or rebuild "
                "them with `python -m runtime.nano.recipe --out DIR`"
            )
        with safe_open(str(self.path), "pt") as file:
            self.config = ModelConfig.from_original(json.loads(file.metadata()["config"]))
            self.tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
        self.vocab = self.tensors["vocab"].long()

    def get(self, name: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        tensor = self.tensors[name]
        if name in ROWS:
            full = tensor.new_zeros(self.config.vocab_size, tensor.shape[1])
            full[self.vocab] = tensor
            tensor = full
        if shape is not None and tuple(tensor.shape) != tuple(shape):
            raise ValueError(
                f"{self.path}: tensor {name!r} has shape {list(tensor.shape)}, "
                f"expected {list(shape)}"
            )
        return tensor

    def standard_tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor of the standard checkpoint (full-vocabulary embeddings)."""
        return {name: self.get(name) for name in self.tensors if name != "vocab"}
