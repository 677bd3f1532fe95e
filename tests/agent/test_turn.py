"""The pure part of a turn: tokens in, events and an outcome out (no engine, no loop)."""

from __future__ import annotations

import itertools

import pytest
from scripted_engine import ENC, analysis, call, final, raw, sampled

from agent.events import (
    AnswerDelta,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallStarted,
    ToolCallTruncated,
)
from agent.harmony import Role
from agent.turn import TurnReader

STOPS = (200002, 200012)
WEATHER = (
    '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Oslo"}'
)
INVENTED = (
    "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>"
    '{"temperature": 31}<|end|><|start|>assistant<|channel|>final<|message|>It is 31.<|return|>'
)


def read(tokens: list[int]):
    """Feed `tokens` until the reader is done, as the loop does; the events, the outcome
    and how many tokens were read."""
    ids = (f"call_{n}" for n in itertools.count(1))
    reader = TurnReader(ENC, STOPS, lambda: next(ids))
    events = []
    for token in tokens:
        if reader.done:
            break
        events += reader.feed(token)
    outcome = reader.finish()
    return events + outcome.events, outcome, reader.tokens


def kinds(events) -> list[type]:
    collapsed: list[type] = []
    for event in events:
        if not collapsed or collapsed[-1] is not type(event):
            collapsed.append(type(event))
    return collapsed


def test_an_answer_ends_the_turn_at_the_stop_token() -> None:
    tokens = sampled(analysis("Think."), final("Hi."))
    events, outcome, _ = read([*tokens, *raw("<|start|>assistant<|message|>more")])
    assert kinds(events) == [ReasoningDelta, AnswerDelta]
    assert (outcome.end, outcome.answer, outcome.call) == ("answer", "Hi.", None)
    assert [m.channel for m in outcome.messages] == ["analysis", "final"]
    assert outcome.completion_tokens == len(tokens)
    assert outcome.reasoning_tokens == len(ENC.encode("Think."))
    assert outcome.recoveries == []


def test_a_call_ending_in_call_is_dispatched_without_recovery() -> None:
    tokens = sampled(analysis("Weather."), call("functions.get_weather", '{"city":"Oslo"}'))
    events, outcome, _ = read(tokens)
    assert kinds(events) == [
        ReasoningDelta,
        ToolCallStarted,
        ToolCallArgumentsDelta,
        ToolCallFinished,
    ]
    assert outcome.end == "call" and outcome.recoveries == []
    assert outcome.call.call_id == events[-1].call_id == "call_1"
    assert outcome.call.message.recipient == "functions.get_weather"
    assert outcome.messages[-1] is outcome.call.message


def test_a_call_ending_in_end_ends_the_turn_and_what_the_model_invents_is_not_read() -> None:
    tokens = raw(WEATHER + "<|end|>" + INVENTED)
    events, outcome, read_tokens = read(tokens)
    assert read_tokens == len(raw(WEATHER + "<|end|>"))
    assert outcome.end == "call"
    assert outcome.call.message.text == '{"city":"Oslo"}'
    assert [type(e) for e in events].count(ToolCallFinished) == 1
    assert not any(isinstance(e, AnswerDelta) for e in events)
    assert len(outcome.messages) == 1
    assert any("instead of <|call|>" in r for r in outcome.recoveries)


def test_a_message_in_another_role_is_discarded_with_all_after_it() -> None:
    """The model answering for the tool it never called: no call, nothing kept."""
    tokens = raw("<|channel|>analysis<|message|>Let me check.<|end|>" + INVENTED)
    events, outcome, _ = read(tokens)
    assert outcome.end == "invented" and outcome.call is None
    assert [m.author.role for m in outcome.messages] == [Role.ASSISTANT]
    assert outcome.messages[0].text == "Let me check."
    assert kinds(events) == [ReasoningDelta]  # not a character of the invented text
    assert any("'functions.get_weather'" in r for r in outcome.recoveries)


def test_a_headerless_message_in_another_role_is_discarded_too() -> None:
    tokens = raw("<|channel|>final<|message|>ok<|end|><|start|>user hi<|end|>")
    _, outcome, _ = read(tokens)
    assert outcome.end == "invented"
    assert [m.text for m in outcome.messages] == ["ok"]


@pytest.mark.parametrize("cut", [5, 12], ids=["in-header", "in-arguments"])
def test_a_call_cut_off_is_truncated_not_called(cut: int) -> None:
    tokens = sampled(analysis("Weather."), call("functions.get_weather", '{"city":"Oslo"}'))
    prefix = len(sampled(analysis("Weather."))) + 1  # ... through the call's <|start|>
    events, outcome, _ = read(tokens[: prefix + cut])
    assert outcome.end == "cut" and outcome.call is None
    assert ToolCallFinished not in kinds(events)
    assert isinstance(events[-1], ToolCallTruncated)
    assert "functions.get_weather".startswith(outcome.truncated_call.recipient)
    assert outcome.truncated_call.call_id == events[-1].call_id
    assert [m.channel for m in outcome.messages] == ["analysis"]  # the cut call is not kept
    assert any("cut off" in r for r in outcome.recoveries)


def test_a_cut_answer_is_kept_but_is_no_answer() -> None:
    tokens = sampled(final("A long answer that goes on."))
    _, outcome, _ = read(tokens[:6])
    assert outcome.end == "cut" and outcome.answer == "" and outcome.truncated_call is None
    assert outcome.messages[0].channel == "final"


def test_feeding_a_finished_turn_is_a_mistake() -> None:
    reader = TurnReader(ENC, STOPS, lambda: "call_1")
    for token in sampled(final("ok")):
        reader.feed(token)
    with pytest.raises(RuntimeError, match="finish"):
        reader.feed(1)
