"""The examples run end to end on a real (random-weight) checkpoint with the local runtime.

Random weights emit arbitrary tokens, so this checks the plumbing (loading, prompting,
streaming, recovering from malformed output, limits), not the answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from runtime.testing import write_random_checkpoint

    # Tiny, with the real vocabulary, so harmony prompts fit.
    return write_random_checkpoint(tmp_path_factory.mktemp("ckpt"), "mini", seed=0)


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "OSS_AGENT_MODEL"},
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "expected"),
    [("function_tool.py", "stopped: "), ("stream_events.py", "[done: ")],
)
def test_example_runs_on_a_random_checkpoint(checkpoint: Path, name: str, expected: str) -> None:
    done = run_example(name, "--model", str(checkpoint), "--max-tokens-per-turn", "24")
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected in done.stdout


def test_example_without_model_says_what_to_pass() -> None:
    done = run_example("function_tool.py")
    assert done.returncode == 2 and "pass --model" in done.stderr


def test_research_agent_loads() -> None:
    """Its run needs Docker and a search key; here it must at least import and parse."""
    done = run_example("research_agent.py", "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "question" in done.stdout
