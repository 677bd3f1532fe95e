"""The one protocol every tool implements: what the model is told, and how a call is answered.

A tool owns one harmony namespace (`python`, `browser`, `functions`). The agent loop finds
the tool whose namespace matches a message's recipient, awaits `call(message)` and appends
the returned tool messages to the conversation.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from agent.harmony import Author, Message, Role, TextContent, ToolNamespaceConfig

ArgumentsT = TypeVar("ArgumentsT", bound=BaseModel)


class ToolError(Exception):
    """A call the tool cannot carry out; its text is sent back to the model as the result."""


class Tool(ABC):
    """Base class for tools. Subclasses set `name` and implement `namespace` and `call`."""

    name: str
    # Builtin namespaces (browser, python) are declared in the system message; user
    # function namespaces in the developer message.
    in_system_message: bool = True
    # Declared to the model but executed by whoever called the agent (an API client): a
    # run ends with stop_reason "tool_calls" when the model calls it.
    runs_in_caller: bool = False

    @abstractmethod
    def namespace(self) -> ToolNamespaceConfig:
        """The namespace config rendered into the prompt, stating the tool's real behaviour."""

    @abstractmethod
    async def call(self, message: Message) -> list[Message]:
        """Execute the assistant message addressed to this tool; return the tool message(s)."""

    def handles(self, recipient: str) -> bool:
        """Whether a message with this recipient (`python`, `browser.open`, ...) is ours."""
        return recipient == self.name or recipient.startswith(self.name + ".")

    async def aclose(self) -> None:
        """Release what the tool holds (containers, connections). Safe to call twice."""

    async def __aenter__(self) -> Tool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def tool_message(call: Message, text: str, author_name: str | None = None) -> Message:
    """The answer to `call`: authored by the tool, to the assistant, on the call's channel."""
    return Message(
        author=Author(role=Role.TOOL, name=author_name or call.recipient),
        content=[TextContent(text=text)],
        channel=call.channel,
        recipient="assistant",
    )


def validate_arguments(text: str, model: type[ArgumentsT], tool: str, hint: str) -> ArgumentsT:
    """The model's JSON arguments for `tool`, checked by `model`. Anything wrong raises a
    `ToolError` that names the problem and ends with `hint` (what a good call looks like),
    so the model can correct itself."""
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ToolError(
            f"Invalid arguments for {tool}: not valid JSON ({exc.msg} at position {exc.pos}). "
            f"{hint}"
        ) from None
    if not isinstance(data, dict):
        raise ToolError(
            f"Invalid arguments for {tool}: expected a JSON object, got "
            f"{type(data).__name__}. {hint}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ToolError(
            f"Invalid arguments for {tool}: {validation_problems(exc)}. {hint}"
        ) from None


def validation_problems(error: ValidationError) -> str:
    """pydantic's errors as one line: `field: what is wrong; ...`."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
        for err in error.errors(include_url=False)
    )
