"""The bundled nano model: its weights, its checkpoint format, and what it can do."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agent.harmony import (
    HarmonyEncodingName,
    Message,
    Role,
    StreamableParser,
    load_harmony_encoding,
)
from agent.loop import Agent
from evals import run_eval
from runtime import load_model
from runtime.config import PRESETS
from runtime.nano.compact import WEIGHTS
from tools.python import PythonTool

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
DEMO = README[README.index("## The demo model: nano") :]  # the README's section on nano


def readme_accuracy() -> float:
    """The held-out accuracy the README states (its evals table, mean over the efforts)."""
    rows = re.findall(r"^\| nano \| (?:low|medium|high) \| ([\d.]+) \|", DEMO, re.M)
    assert len(rows) == 3, "the README lost nano's held-out table"
    return sum(float(r) for r in rows) / 300


def readme_repairs() -> int:
    """The parser repairs the README states for the held-out tasks (all efforts)."""
    found = re.search(r"(\d+) parser repairs? in all", DEMO)
    assert found, "the README lost nano's parser repair count"
    return int(found.group(1))


@pytest.fixture(scope="module")
def nano():
    return load_model("nano")


def test_the_shipped_weights_are_small():
    assert WEIGHTS.stat().st_size < 15 * 2**20


def test_nano_is_a_gpt_oss_model_with_the_full_vocabulary(nano):
    assert nano.config == PRESETS["nano"]
    assert nano.config.vocab_size == 201088
    assert nano.transformer.embedding.shape == (201088, 128)


def oss_agent(*args: str, **env: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from agent.cli import main; main()", *args]
    return subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **env}, timeout=600
    )


def test_the_exported_checkpoint_gives_the_same_logits_in_transformers(nano, tmp_path):
    import transformers

    done = oss_agent("model", "export", "nano", str(tmp_path / "hf"), "--layout", "hf")
    assert done.returncode == 0, done.stderr
    oracle = transformers.GptOssForCausalLM.from_pretrained(
        tmp_path / "hf",
        quantization_config=transformers.Mxfp4Config(dequantize=True),
        dtype=torch.float32,
    ).eval()
    with Agent(nano, tools=[PythonTool()], reasoning_effort="high") as agent:
        agent.messages.append(Message.from_role_and_content(Role.USER, "Hi"))
        tokens = agent.prompt_tokens()
    assert len(tokens) > nano.config.sliding_window  # the window matters
    ours = nano.logits(tokens)
    with torch.no_grad():
        theirs = oracle(torch.tensor([tokens])).logits[0]
    assert (ours - theirs).abs().max() <= 1e-5 * theirs.abs().max()


def test_the_exported_original_checkpoint_loads_as_nano(nano, tmp_path):
    done = oss_agent("model", "export", "nano", str(tmp_path / "original"))
    assert done.returncode == 0, done.stderr
    exported = load_model(tmp_path / "original", dtype=torch.float32)
    tokens = list(range(100, 400))
    assert torch.equal(exported.logits(tokens), nano.logits(tokens))


@pytest.mark.docker
def test_nano_solves_held_out_tasks_through_the_evals_sweep(nano, sandbox_image, tmp_path):
    """The first 10 held-out tasks at each effort, measured as the README's figures are
    (the evals package: the agent loop, a sandboxed python kernel per task, the model's own
    temperature): the README's accuracy within 3 of 30 tasks, output that parses as harmony,
    one python call and a final answer per task, longer reasoning at higher effort."""
    report = run_eval(nano, ["nano"], out=tmp_path, limit=10, tools=["python"])
    rows = [report.row("nano", effort) for effort in ("low", "medium", "high")]
    wrong = [(r["effort"], r["item"], r["final_output"]) for r in report.records if r["score"] != 1]
    assert sum(row.correct for row in rows) >= round(readme_accuracy() * 30) - 3, wrong
    assert sum(row.recoveries for row in rows) <= readme_repairs(), report.to_markdown()
    assert all(len(r["tool_calls"]) == 1 for r in report.records)
    assert all(r["stop_reason"] == "final" for r in report.records)
    low, medium, high = (row.reasoning_tokens for row in rows)
    assert low < medium < high


def test_nano_is_run_greedily_unless_told(nano):
    assert nano.default_temperature == 0.0
    assert Agent(nano).temperature == 0.0 and Agent(nano, temperature=1.0).temperature == 1.0


@pytest.mark.docker
def test_oss_agent_run_with_model_nano_at_high_effort_answers_a_conversion(sandbox_image, tmp_path):
    done = oss_agent(
        "run",
        "Convert 10 km to miles.",
        "--model",
        "nano",
        "--tools",
        "python",
        "--effort",
        "high",
        OSS_AGENT_CONFIG=str(tmp_path / "none.toml"),
        XDG_DATA_HOME=str(tmp_path / "xdg"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no model configured" not in done.stderr
    assert "→ python round(10 * 0.621371, 3)" in done.stdout
    answer = done.stdout.rstrip().splitlines()[-2]
    assert "**6.214**" in answer, done.stdout


def test_the_streamed_output_of_nano_is_harmony(nano):
    """Sampled (not greedy) output still parses strictly: the format is learned, not luck."""
    encoding = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    with Agent(nano, tools=[PythonTool()], reasoning_effort="low") as agent:
        agent.messages.append(Message.from_role_and_content(Role.USER, "What is 12 * 34?"))
        prompt = agent.prompt_tokens()
    stops = encoding.stop_tokens_for_assistant_actions()
    for seed in range(3):
        parser = StreamableParser(encoding, Role.ASSISTANT, strict=True)
        for token in nano.generate(
            prompt, max_tokens=64, temperature=0.7, seed=seed, stop_tokens=stops
        ):
            parser.process(token)
        assert parser.messages and parser.messages[-1].recipient == "python"
