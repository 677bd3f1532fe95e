"""One sampled assistant turn as pure logic: tokens in, events and an outcome out.

No engine, clock or I/O here: `agent.loop` pumps the engine's tokens into a `TurnReader`,
yields its events and acts on the `TurnOutcome`; tests drive it with token lists.

What a turn is:
- It ends at the first stop token, or at the first complete message addressed to a
  recipient: a tool call, whether the model closed it with `<|call|>` or with `<|end|>`
  (models do both). The reader then reads no further; a call closed by `<|end|>` is
  recorded as a recovery, since the model would have gone on to invent the tool's answer.
- Only assistant messages are calls. A message in another role (the model writing the
  tool's answer itself, `<|start|>functions.x to=assistant...`) ends the turn: it and all
  that follows are discarded and recorded as a recovery, never dispatched nor kept.
- A call cut off before it closed (the token limit, the clock) is not a call: it comes out
  as `truncated_call` with a `ToolCallTruncated` event, and is not kept in the conversation.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal

from agent.events import (
    AnswerDelta,
    CommentaryDelta,
    Event,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallStarted,
    ToolCallTruncated,
)
from agent.harmony import HarmonyEncoding, Message, Role, StreamableParser, StreamState
from agent.result import TruncatedCall

CALL_TOKEN = 200012

# How a turn ended: a stop token with no call (an answer), a complete call, a message the
# model wrote in another role, or the stream ending first (limit, clock, engine).
TurnEnd = Literal["answer", "call", "invented", "cut"]


@dataclass(frozen=True)
class CallRequest:
    """A complete tool call, to be dispatched."""

    call_id: str
    message: Message


@dataclass
class TurnOutcome:
    end: TurnEnd
    messages: list[Message]  # assistant messages for the conversation, cut calls left out
    call: CallRequest | None = None
    truncated_call: TruncatedCall | None = None
    answer: str = ""  # the final-channel text when `end` is "answer"
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    recoveries: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)  # what `finish` adds to the stream


class TurnReader:
    """Reads one sampled assistant turn token by token. `feed` returns the events each
    token produces; once `done`, feed no more and call `finish` for the outcome."""

    def __init__(
        self,
        encoding: HarmonyEncoding,
        stop_tokens: Collection[int],
        new_call_id: Callable[[], str],
    ) -> None:
        self._parser = StreamableParser(encoding, Role.ASSISTANT, strict=False)
        self._stops = frozenset(stop_tokens)
        self._new_call_id = new_call_id
        self._call_id: str | None = None  # the call being written
        self._kept = 0  # parser messages that belong to the turn
        self._end: TurnEnd | None = None
        self._call: CallRequest | None = None
        self._recoveries: list[str] = []
        self.tokens = 0
        self.reasoning_tokens = 0

    @property
    def done(self) -> bool:
        return self._end is not None

    def feed(self, token: int) -> list[Event]:
        if self.done:
            raise RuntimeError("the turn is over: call finish() instead of feeding more")
        parser = self._parser
        self.tokens += 1
        was_in_content = parser.state is StreamState.CONTENT
        parser.process(token)
        in_content = parser.state is StreamState.CONTENT
        events: list[Event] = []
        if in_content and was_in_content and parser.current_channel == "analysis":
            self.reasoning_tokens += 1
        if in_content and not was_in_content and parser.current_role != Role.ASSISTANT:
            header = parser.state_data["header"]["author"]
            self._invented(header["name"] or header["role"])
            return events
        events += self._completed(token)
        if self.done:
            return events
        if in_content and not was_in_content and parser.current_recipient is not None:
            self._call_id = self._new_call_id()
            events.append(ToolCallStarted(self._call_id, parser.current_recipient))
        delta = parser.last_content_delta
        if delta and in_content:
            events.append(self._delta(delta))
        if token in self._stops:
            self._end = "answer"
        return events

    def finish(self) -> TurnOutcome:
        """The outcome; completes a message the stream cut off (a cut call is set apart)."""
        parser = self._parser
        truncated: TruncatedCall | None = None
        events: list[Event] = []
        if not self.done:
            self._end = "cut"
            before = len(parser.messages)
            parser.process_eos()
            for message in parser.messages[before:]:
                if message.author.role != Role.ASSISTANT:
                    continue
                if message.recipient is not None:
                    call_id = self._call_id or self._new_call_id()
                    truncated = TruncatedCall(
                        call_id=call_id, recipient=message.recipient, arguments=message.text
                    )
                    events.append(ToolCallTruncated(call_id, message.recipient, message.text))
                    self._recoveries.append(
                        f"the call to {message.recipient} was cut off before it ended; "
                        "it was not run and is not kept in the conversation"
                    )
                else:
                    self._kept += 1
        messages = parser.messages[: self._kept]
        recoveries = [str(r) for r in parser.recoveries] + self._recoveries
        return TurnOutcome(
            end=self._end,
            messages=messages,
            call=self._call,
            truncated_call=truncated,
            answer=_answer(messages) if self._end == "answer" else "",
            completion_tokens=self.tokens,
            reasoning_tokens=self.reasoning_tokens,
            recoveries=recoveries,
            events=events,
        )

    # -- inside -----------------------------------------------------------------------------

    def _completed(self, token: int) -> list[Event]:
        """Account for messages this token completed; ends the turn at a call or at a
        message in another role."""
        events: list[Event] = []
        for message in self._parser.messages[self._kept :]:
            if message.author.role != Role.ASSISTANT:
                self._invented(message.author.name or message.author.role.value)
                return events
            self._kept += 1
            if message.recipient is None:
                continue
            call_id = self._call_id or self._new_call_id()
            self._call = CallRequest(call_id, message)
            self._call_id = None
            self._end = "call"
            events.append(ToolCallFinished(call_id, message.recipient, message.text))
            if token != CALL_TOKEN:
                self._recoveries.append(
                    f"the call to {message.recipient} ended with "
                    f"{self._parser.encoding.decode([token])!r} instead of <|call|>; "
                    "the turn ends there and anything the model wrote after it is discarded"
                )
            return events
        return events

    def _invented(self, author: str) -> None:
        self._end = "invented"
        self._recoveries.append(
            f"the model wrote a message as {author!r} (only assistant messages are its "
            "own); it and everything after it were discarded"
        )

    def _delta(self, text: str) -> Event:
        parser = self._parser
        if parser.current_recipient is not None:
            return ToolCallArgumentsDelta(self._call_id or "", text)
        if parser.current_channel == "analysis":
            return ReasoningDelta(text)
        if parser.current_channel == "commentary":
            return CommentaryDelta(text)
        return AnswerDelta(text)


def _answer(messages: list[Message]) -> str:
    """The final-channel text; a message that lost its channel (a malformed answer, a bare
    refusal) still counts when nothing better is there."""
    finals = [m.text for m in messages if m.channel == "final"]
    if finals:
        return finals[-1]
    others = [m.text for m in messages if m.channel != "analysis"]
    return others[-1] if others else ""
