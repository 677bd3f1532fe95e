"""Saving a session and continuing it later."""

from __future__ import annotations

import json

import pytest
from scripted_engine import ScriptedEngine, analysis, call, final, sampled

from agent import Agent
from agent.harmony import Conversation
from agent.transcript import TranscriptError
from tools.functions import function_tool


@function_tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_save_and_resume_round_trip(tmp_path) -> None:
    engine = ScriptedEngine(
        [
            sampled(analysis("Add them."), call("functions.add", '{"a": 1, "b": 2}')),
            sampled(final("3")),
        ]
    )
    agent = Agent(engine, tools=[add], instructions="Be exact.", reasoning_effort="high")
    first = agent.run("1+2?")
    path = agent.save(tmp_path / "session.json")

    data = json.loads(path.read_text())
    assert (data["reasoning_effort"], data["instructions"]) == ("high", "Be exact.")
    assert data["runs"][0]["tool_calls"][0]["output"] == "3"
    assert data["runs"][0]["usage"]["completion_tokens"] == first.usage.completion_tokens
    # The conversation is openai-harmony's JSON form.
    assert Conversation.from_json(json.dumps(data["conversation"])) == agent.conversation

    later = ScriptedEngine([sampled(final("6"))])
    resumed = Agent.resume(path, model=later, tools=[add])
    assert resumed.conversation == agent.conversation
    assert resumed.results[0].tool_calls == first.tool_calls
    assert resumed.results[0].conversation == first.conversation
    assert resumed.run("and times 2?").final_output == "6"
    # The resumed prompt is the original session's, continued.
    prompt = later.prompt_text(0)
    assert "Reasoning: high" in prompt and "# Instructions\n\nBe exact." in prompt
    assert "<|channel|>final<|message|>3<|end|><|start|>user<|message|>and times 2?" in prompt

    resumed.save(path)
    assert [r["final_output"] for r in json.loads(path.read_text())["runs"]] == ["3", "6"]


def test_resume_settings_can_be_overridden(tmp_path) -> None:
    agent = Agent(ScriptedEngine([sampled(final("a"))]), reasoning_effort="high")
    agent.run("q")
    path = agent.save(tmp_path / "s.json")
    resumed = Agent.resume(path, model=ScriptedEngine([]), reasoning_effort="low")
    assert resumed.reasoning_effort.value == "Low"


def test_not_a_transcript(tmp_path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"messages": []}')
    with pytest.raises(TranscriptError, match="is not an oss-agent transcript"):
        Agent.resume(path, model=ScriptedEngine([]))


SAVE_UNDER_A_FILE_SIZE_LIMIT = """
import resource, signal, sys
sys.path.insert(0, {tests!r})
from scripted_engine import ScriptedEngine, final, sampled
from agent import Agent

agent = Agent(ScriptedEngine([sampled(final("x" * 5000))]))
agent.run("long answer please")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit: EFBIG instead of a kill
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
try:
    agent.save({path!r})
except OSError as exc:
    print("save failed:", exc.strerror)
"""


def test_a_save_that_fails_midway_leaves_the_previous_transcript_whole(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "session.json"
    Agent(ScriptedEngine([sampled(final("short"))])).save(path)
    path.chmod(0o640)
    before = path.read_text()
    script = SAVE_UNDER_A_FILE_SIZE_LIMIT.format(tests=str(Path(__file__).parent), path=str(path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "save failed: File too large" in done.stdout, done.stderr
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["session.json"]  # no scratch file left

    agent = Agent(ScriptedEngine([sampled(final("again"))]))
    agent.run("hi")
    agent.save(path)
    assert json.loads(path.read_text())["runs"][0]["final_output"] == "again"
    assert path.stat().st_mode & 0o777 == 0o640  # replacing keeps the file's permissions


def test_a_local_checkpoint_is_saved_as_an_absolute_path(tmp_path, monkeypatch) -> None:
    from agent.transcript import save_transcript

    (tmp_path / "ckpt").mkdir()
    monkeypatch.chdir(tmp_path)
    agent = Agent(ScriptedEngine([]))
    agent.model_name = "ckpt"  # as when built from the relative path "ckpt"
    data = json.loads(save_transcript(agent, tmp_path / "s.json").read_text())
    assert data["model"] == str(tmp_path / "ckpt")
