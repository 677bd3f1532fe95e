"""The agent loop driven through every path by a scripted model and real function tools."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from scripted_engine import ENC, ScriptedEngine, analysis, call, final, raw, sampled

from agent import Agent
from agent.events import (
    AnswerDelta,
    CommentaryDelta,
    Done,
    Error,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallStarted,
    ToolResult,
    TurnEnd,
)
from agent.harmony import Message, Role, ToolNamespaceConfig
from tools.base import Tool, tool_message
from tools.functions import function_tool


@function_tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@function_tool
def explode(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"boom: {reason}")


@function_tool(timeout=0.05)
async def slow(seconds: float) -> str:
    """Sleeps."""
    await asyncio.sleep(seconds)
    return "woke up"


class EchoTool(Tool):
    """A builtin-style tool (system message) that records whether it was closed."""

    name = "echo"

    def __init__(self) -> None:
        self.closed = 0

    def namespace(self) -> ToolNamespaceConfig:
        return ToolNamespaceConfig(name="echo", description="Echoes its input.", tools=[])

    async def call(self, message: Message) -> list[Message]:
        return [tool_message(message, message.text.upper())]

    async def aclose(self) -> None:
        self.closed += 1


def test_plain_answer_with_usage_and_request_options() -> None:
    turn = sampled(analysis("User greets. Reply."), final("Hello!"))
    engine = ScriptedEngine([turn])
    agent = Agent(engine, reasoning_effort="low", max_tokens_per_turn=500, seed=7)
    result = agent.run("hi")

    assert result.final_output == "Hello!"
    assert result.stop_reason == "final"
    assert [m.channel for m in result.conversation.messages[1:]] == [None, "analysis", "final"]
    assert "Reasoning: low" in engine.prompt_text(0)
    assert engine.prompt_text(0).endswith("<|start|>user<|message|>hi<|end|><|start|>assistant")
    assert engine.options[0] == {
        "max_tokens": 500,
        "temperature": 1.0,
        "top_p": 1.0,
        "seed": 7,
        "stop_tokens": [200002, 200012],
    }
    usage = result.usage
    assert usage.prompt_tokens == len(engine.prompts[0])
    assert usage.completion_tokens == len(turn)
    assert usage.reasoning_tokens == len(ENC.encode("User greets. Reply."))
    assert usage.prefilled_tokens is None  # the scripted engine reports no cache stats
    assert result.turns[0].first_token_seconds is not None


def test_function_call_result_then_answer() -> None:
    engine = ScriptedEngine(
        [
            sampled(analysis("Use add."), call("functions.add", '{"a": 2, "b": "3"}')),
            sampled(final("2 + 3 = 5")),
        ]
    )
    result = Agent(engine, tools=[add]).run("what is 2+3?")

    assert result.final_output == "2 + 3 = 5"
    [record] = result.tool_calls
    assert (record.recipient, record.output, record.is_error) == ("functions.add", "5", False)
    second = engine.prompt_text(1)
    assert "type add = (_: {\na: number,\nb: number,\n}) => any;" in engine.prompt_text(0)
    expected = "<|start|>functions.add to=assistant<|channel|>commentary<|message|>5<|end|>"
    assert expected in second
    # Chain of thought stays while the model is still working towards an answer.
    assert "Use add." in second


def test_analysis_dropped_after_final_answer_in_follow_up() -> None:
    engine = ScriptedEngine(
        [
            sampled(analysis("First thought."), call("functions.add", '{"a": 1, "b": 1}')),
            sampled(analysis("Tool said 2."), final("2")),
            sampled(analysis("Second question."), call("functions.add", '{"a": 2, "b": 2}')),
            sampled(final("4")),
        ]
    )
    agent = Agent(engine, tools=[add])
    assert agent.run("1+1?").final_output == "2"
    follow_up = agent.run("and 2+2?")

    assert follow_up.final_output == "4"
    third, fourth = engine.prompt_text(2), engine.prompt_text(3)
    for prompt in (third, fourth):
        assert "First thought." not in prompt and "Tool said 2." not in prompt
        assert "<|channel|>final<|message|>2<|end|><|start|>user<|message|>and 2+2?" in prompt
    assert "Second question." in fourth
    # The session keeps everything, reasoning included.
    texts = [m.text for m in agent.conversation.messages]
    assert "First thought." in texts and "Second question." in texts
    assert [r.final_output for r in agent.results] == ["2", "4"]
    assert follow_up.conversation == agent.conversation  # the whole session


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (call("functions.nope", "{}"), "there is no tool 'functions.nope'. Available: "),
        (call("functions.add", '{"a": 1,'), "not valid JSON"),
        (call("functions.add", '{"a": "x", "b": 1}'), "a: Input should be a valid integer"),
        (call("functions.add", '{"a": 1, "b": 2, "c": 3}'), "c: Extra inputs are not permitted"),
        (call("functions.explode", '{"reason": "x"}'), "ValueError: boom: x"),
        (call("functions.slow", '{"seconds": 5}'), "timed out after 0.05 s"),
    ],
    ids=["unknown", "bad-json", "invalid", "extra", "exception", "timeout"],
)
def test_tool_failures_go_back_to_the_model(message: Message, expected: str) -> None:
    engine = ScriptedEngine([sampled(message), sampled(final("Sorry."))])
    started = time.monotonic()
    result = Agent(engine, tools=[add, explode, slow]).run("go")

    assert time.monotonic() - started < 2
    assert result.stop_reason == "final" and result.final_output == "Sorry."
    [record] = result.tool_calls
    assert record.is_error and expected in record.output
    tool_reply = result.conversation.messages[-2]
    assert tool_reply.author.role == Role.TOOL and tool_reply.author.name == message.recipient
    assert expected in engine.prompt_text(1)


def test_crashing_builtin_tool_does_not_end_the_run() -> None:
    class Broken(EchoTool):
        async def call(self, message: Message) -> list[Message]:
            raise RuntimeError("container vanished")

    engine = ScriptedEngine(
        [raw("<|channel|>commentary to=echo<|message|>hi<|call|>"), sampled(final("ok"))]
    )
    result = Agent(engine, tools=[Broken()]).run("go")
    assert result.final_output == "ok"
    assert result.tool_calls[0].output == "Error: RuntimeError: container vanished"


def test_builtin_tools_in_system_message_function_tools_in_developer() -> None:
    engine = ScriptedEngine([sampled(final("ok"))])
    Agent(engine, tools=[EchoTool(), add, explode], instructions="Be brief.").run("go")
    prompt = engine.prompt_text(0)
    system, developer = prompt.split("<|start|>developer")
    assert "## echo\n\nEchoes its input." in system
    assert "Calls to these tools must go to the commentary channel: 'functions'." in system
    assert "# Instructions\n\nBe brief." in developer
    assert developer.count("namespace functions {") == 1
    assert "type add" in developer and "type explode" in developer


def test_malformed_output_is_recovered_and_reported() -> None:
    # Channel before recipient is fine; extra words in the header are not.
    turn = raw("<|channel|>commentary to=echo code junk<|message|>hi<|call|>")
    engine = ScriptedEngine([turn, raw("<|channel|>final<|message|>HI back<|return|>")])
    result = Agent(engine, tools=[EchoTool()]).run("go")
    assert result.tool_calls[0].output == "HI"
    assert result.final_output == "HI back"
    assert any("unexpected words" in r for r in result.turns[0].recoveries)


def test_answer_without_channel_is_still_the_answer() -> None:
    engine = ScriptedEngine([raw("I can't help with that.<|return|>")])
    result = Agent(engine).run("go")
    assert result.stop_reason == "final"
    assert result.final_output == "I can't help with that."
    assert result.turns[0].recoveries


def test_max_turns() -> None:
    looping = sampled(call("functions.add", '{"a": 1, "b": 1}'))
    engine = ScriptedEngine([looping] * 3)
    result = Agent(engine, tools=[add], max_turns=2).run("go")
    assert result.stop_reason == "max_turns"
    assert len(result.tool_calls) == 2 and len(engine.prompts) == 2


def test_max_tokens_per_turn() -> None:
    engine = ScriptedEngine([sampled(analysis("word " * 100), final("late"))])
    result = Agent(engine, max_tokens_per_turn=20).run("go")
    assert result.stop_reason == "max_tokens"
    assert result.usage.completion_tokens == 20
    assert result.final_output == ""


def test_max_tokens_enforced_even_if_engine_ignores_it() -> None:
    class Greedy(ScriptedEngine):
        def generate(self, tokens, *, max_tokens, **options):
            return super().generate(tokens, max_tokens=10_000, **options)

    engine = Greedy([sampled(analysis("word " * 100), final("late"))])
    result = Agent(engine, max_tokens_per_turn=20).run("go")
    assert (result.stop_reason, result.usage.completion_tokens) == ("max_tokens", 20)


def test_engine_context_bounds_each_turn() -> None:
    class Bounded(ScriptedEngine):
        max_context = 0  # set below, once the prompt length is known

    call_turn = sampled(call("functions.add", '{"a": 1, "b": 1}'))
    engine = Bounded([call_turn, sampled(final("2"))])
    agent = Agent(engine, tools=[add], max_tokens_per_turn=1000)
    user = ENC.render(Message.from_role_and_content(Role.USER, "1+1?"))
    engine.max_context = len(agent.prompt_tokens()) + len(user) + len(call_turn) + 2
    result = agent.run("1+1?")
    assert engine.options[0]["max_tokens"] == len(call_turn) + 2
    # The tool result filled the context: the run stops instead of asking for no tokens.
    assert result.stop_reason == "context_full" and len(engine.prompts) == 1


def test_wall_time_limit_during_generation() -> None:
    engine = ScriptedEngine([sampled(analysis("word " * 200), final("late"))], delay=0.01)
    started = time.monotonic()
    result = Agent(engine, max_seconds=0.2).run("go")
    assert result.stop_reason == "timeout"
    assert time.monotonic() - started < 1.5
    assert engine.closed.wait(2), "the engine's generator was not closed"


def test_wall_time_limit_during_tool_call() -> None:
    @function_tool(timeout=None)
    async def wait(seconds: float) -> str:
        """Waits."""
        await asyncio.sleep(seconds)
        return "done"

    engine = ScriptedEngine([sampled(call("functions.wait", '{"seconds": 10}'))])
    started = time.monotonic()
    result = Agent(engine, tools=[wait], max_seconds=0.2).run("go")
    assert result.stop_reason == "timeout"
    assert time.monotonic() - started < 1.5


def test_engine_failure_ends_run_with_error() -> None:
    class Failing:
        def generate(self, tokens, **options):
            yield from raw("<|channel|>final<|message|>par")
            raise ConnectionError("server went away")

    async def collect():
        return [e async for e in Agent(Failing()).stream("go")]

    events = asyncio.run(collect())
    assert isinstance(events[-2], Error) and "server went away" in events[-2].message
    result = events[-1].result
    assert (result.stop_reason, result.error) == ("error", "ConnectionError: server went away")


def test_stream_event_order() -> None:
    engine = ScriptedEngine(
        [
            sampled(
                analysis("Think."),
                Message.from_role_and_content(Role.ASSISTANT, "Adding.").with_channel("commentary"),
                call("functions.add", '{"a": 1, "b": 2}'),
            ),
            sampled(final("3")),
        ]
    )

    async def collect():
        return [e async for e in Agent(engine, tools=[add]).stream("go")]

    events = asyncio.run(collect())
    kinds = []
    for e in events:  # collapse runs of deltas
        if not kinds or kinds[-1] is not type(e):
            kinds.append(type(e))
    assert kinds == [
        ReasoningDelta,
        CommentaryDelta,
        ToolCallStarted,
        ToolCallArgumentsDelta,
        ToolCallFinished,
        ToolResult,
        TurnEnd,
        AnswerDelta,
        TurnEnd,
        Done,
    ]
    text = lambda kind: "".join(e.text for e in events if isinstance(e, kind))  # noqa: E731
    assert text(ReasoningDelta) == "Think."
    assert text(ToolCallArgumentsDelta) == '{"a": 1, "b": 2}'
    assert text(AnswerDelta) == "3"
    started = next(e for e in events if isinstance(e, ToolCallStarted))
    finished = next(e for e in events if isinstance(e, ToolCallFinished))
    result_event = next(e for e in events if isinstance(e, ToolResult))
    assert started.call_id == finished.call_id == result_event.call.call_id
    assert (finished.recipient, result_event.call.output) == ("functions.add", "3")


def test_cancellation_closes_tools() -> None:
    echo = EchoTool()
    engine = ScriptedEngine([sampled(analysis("word " * 500), final("never"))], delay=0.01)

    async def main():
        agent = Agent(engine, tools=[echo])
        task = asyncio.create_task(agent.arun("go"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert echo.closed == 1
    assert engine.closed.wait(2)


def test_context_managers_close_tools() -> None:
    echo = EchoTool()
    with Agent(ScriptedEngine([sampled(final("a"))]), tools=[echo]) as agent:
        assert agent.run("go").final_output == "a"
    assert echo.closed == 1

    async def main():
        async with Agent(ScriptedEngine([]), tools=[echo]):
            pass

    asyncio.run(main())
    assert echo.closed == 2


def test_engine_stats_reported_as_prefilled_and_reused() -> None:
    class Caching(ScriptedEngine):
        def generate(self, tokens, **options):
            # The shape of runtime.engine.GenerationStats.
            self.last_stats = SimpleNamespace(prefilled=4, reused=len(tokens) - 4)
            return super().generate(tokens, **options)

    engine = Caching([sampled(final("a"))])
    usage = Agent(engine).run("go").usage
    assert (usage.prefilled_tokens, usage.reused_tokens) == (4, usage.prompt_tokens - 4)


def test_unknown_effort_says_what_is_valid() -> None:
    with pytest.raises(ValueError, match="use low, medium or high"):
        Agent(ScriptedEngine([]), reasoning_effort="max")
