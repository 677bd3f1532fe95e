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
