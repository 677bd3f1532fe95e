"""The real server (uvicorn) on a free loopback port, over a batched engine on a random
checkpoint or over the scripted engine (the one test double, standing in for a model)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

# The scripted engine lives with the agent tests (tests are not packages).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "agent"))

from runtime import load_model
from runtime.testing import write_random_checkpoint


@pytest.fixture(scope="session")
def mini_checkpoint(tmp_path_factory):
    """A tiny random checkpoint with gpt-oss's vocabulary."""
    return write_random_checkpoint(tmp_path_factory.mktemp("mini") / "gpt-oss-mini", "mini", seed=7)


@pytest.fixture(scope="session")
def mini_model(mini_checkpoint):
    """The mini model in fp32, so batched and single-row matmuls round alike (greedy
    results are then exactly comparable)."""
    return load_model(mini_checkpoint, dtype=torch.float32, compile=False)
