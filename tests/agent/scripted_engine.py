"""A scripted engine: the one test double here. It stands in for the model only, replaying
harmony token streams built with the real encoding, and records every prompt it got."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

from agent.harmony import HarmonyEncodingName, Message, Role, load_harmony_encoding
from runtime.engine import Engine

ENC = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
END, RETURN, CALL = 200007, 200002, 200012


def sampled(*messages: Message) -> list[int]:
    """What the model samples after `<|start|>assistant` to produce `messages`: each one
    rendered, the leading `<|start|>assistant` cut, a final answer ending in `<|return|>`."""
    tokens: list[int] = []
    for message in messages:
        tokens += ENC.render(message)
    prefix = [200006, *ENC.encode("assistant")]
    assert tokens[: len(prefix)] == prefix
    tokens = tokens[len(prefix) :]
    if tokens[-1] == END:
        tokens[-1] = RETURN
    return tokens


def analysis(text: str) -> Message:
    return Message.from_role_and_content(Role.ASSISTANT, text).with_channel("analysis")


def final(text: str) -> Message:
    return Message.from_role_and_content(Role.ASSISTANT, text).with_channel("final")


def call(recipient: str, arguments: str) -> Message:
    return (
        Message.from_role_and_content(Role.ASSISTANT, arguments)
        .with_channel("commentary")
        .with_recipient(recipient)
        .with_content_type("<|constrain|>json")
    )


def raw(text: str) -> list[int]:
    """Harmony markup as the model may emit it (malformed output included)."""
    return ENC.encode(text, allowed_special="all")


class ScriptedEngine(Engine):
    """Replays one scripted turn per `generate` call, honouring max_tokens and stop tokens
    as a real engine does. `delay` sleeps before each token (a slow model)."""

    def __init__(self, turns: Sequence[list[int]], delay: float = 0.0) -> None:
        self.turns = list(turns)
        self.delay = delay
        self.prompts: list[list[int]] = []
        self.options: list[dict] = []
        self.closed = threading.Event()

    def generate(
        self,
        tokens: Sequence[int],
        *,
        max_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop_tokens: Sequence[int] = (),
    ) -> Iterator[int]:
        self.prompts.append(list(tokens))
        self.options.append(
            {
                "max_tokens": max_tokens,
                "temperature": temperature,
                "top_p": top_p,
                "seed": seed,
                "stop_tokens": list(stop_tokens),
            }
        )
        if not self.turns:
            raise AssertionError("the agent asked for more turns than were scripted")
        script = self.turns.pop(0)
        try:
            for token in script[:max_tokens]:
                if self.delay:
                    time.sleep(self.delay)
                yield token
                if token in stop_tokens:
                    return
        finally:
            self.closed.set()

    def prompt_text(self, index: int) -> str:
        return ENC.decode(self.prompts[index])
