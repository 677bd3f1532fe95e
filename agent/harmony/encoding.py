"""`HarmonyEncoding`: conversations to token ids and back, with openai-harmony's method names."""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Sequence
from collections.abc import Set as AbstractSet
from enum import Enum
from typing import Literal

from agent.harmony.chat import (
    Conversation,
    DeveloperContent,
    Message,
    RenderConversationConfig,
    RenderOptions,
    Role,
    SystemContent,
    TextContent,
)
from agent.harmony.errors import HarmonyError
from agent.harmony.render import developer_text, system_text
from agent.harmony.tokenizer import (
    FIRST_SPECIAL_ID,
    LAST_SPECIAL_ID,
    NAMED_SPECIAL_TOKENS,
    load_o200k_harmony,
)

START = NAMED_SPECIAL_TOKENS["<|start|>"]
END = NAMED_SPECIAL_TOKENS["<|end|>"]
MESSAGE = NAMED_SPECIAL_TOKENS["<|message|>"]
CHANNEL = NAMED_SPECIAL_TOKENS["<|channel|>"]
CONSTRAIN = NAMED_SPECIAL_TOKENS["<|constrain|>"]
RETURN = NAMED_SPECIAL_TOKENS["<|return|>"]
CALL = NAMED_SPECIAL_TOKENS["<|call|>"]
CONSTRAIN_MARKER = "<|constrain|>"


class HarmonyEncodingName(str, Enum):
    HARMONY_GPT_OSS = "HarmonyGptOss"

    def __str__(self) -> str:
        return str(self.value)


class HarmonyEncoding:
    """Renders conversations to tokens and parses completions, for the `o200k_harmony` tokenizer."""

    def __init__(self, name: str = HarmonyEncodingName.HARMONY_GPT_OSS.value) -> None:
        self.name = name
        self._tokenizer = load_o200k_harmony()
        self._encode_text = self._tokenizer.encode_ordinary

    @property
    def tokenizer(self):
        """The underlying tiktoken encoding (o200k_harmony)."""
        return self._tokenizer

    @property
    def special_tokens_set(self) -> set[str]:
        return set(self._tokenizer.special_tokens_set)

    # -- rendering ------------------------------------------------------------------------

    def render_conversation_for_completion(
        self,
        conversation: Conversation,
        next_turn_role: Role,
        config: RenderConversationConfig | None = None,
    ) -> list[int]:
        """The prompt for sampling the next message: the conversation plus `<|start|>{role}`."""
        tokens = self.render_conversation(conversation, config)
        tokens.append(START)
        tokens += self._encode_text(Role(next_turn_role).value)
        return tokens

    def render_conversation(
        self, conversation: Conversation, config: RenderConversationConfig | None = None
    ) -> list[int]:
        """Every message rendered in order, dropping stale chain of thought (see below)."""
        config = config or RenderConversationConfig()
        messages = list(conversation.messages)
        options = RenderOptions(conversation_has_function_tools=_has_function_tools(messages))
        drop = _dropped_analysis(messages) if config.auto_drop_analysis else set()
        tokens: list[int] = []
        for index, message in enumerate(messages):
            if index not in drop:
                self._render_into(message, tokens, options)
        return tokens

    def render_conversation_for_training(
        self, conversation: Conversation, config: RenderConversationConfig | None = None
    ) -> list[int]:
        """Like `render_conversation`, but a closing final answer ends in `<|return|>`."""
        tokens = self.render_conversation(conversation, config)
        last = conversation.messages[-1] if conversation.messages else None
        if last and last.author.role == Role.ASSISTANT and last.channel == "final" and tokens:
            tokens[-1] = RETURN
        return tokens

    def render(self, message: Message, render_options: RenderOptions | None = None) -> list[int]:
        """One message, `<|start|>` to `<|end|>` (or `<|call|>` for a tool call)."""
        tokens: list[int] = []
        self._render_into(message, tokens, render_options or RenderOptions())
        return tokens

    def _render_into(self, message: Message, out: list[int], options: RenderOptions) -> None:
        text = self._encode_text
        role = message.author.role
        out.append(START)
        if role == Role.TOOL:
            if message.author.name is None:
                raise HarmonyError(
                    "a tool message needs an author name, e.g. "
                    "Author.new(Role.TOOL, 'functions.get_weather')"
                )
            out += text(message.author.name)
        else:
            out += text(role.value)
            if message.author.name is not None:
                out += text(f":{message.author.name}")
        if message.recipient is not None and message.recipient != "all":
            out += text(f" to={message.recipient}")
        if message.channel is not None:
            out.append(CHANNEL)
            out += text(message.channel)
        if message.content_type is not None:
            if message.content_type.startswith(CONSTRAIN_MARKER):
                out += text(" ")
                out.append(CONSTRAIN)
                rest = message.content_type[len(CONSTRAIN_MARKER) :]
                if rest:
                    out += text(rest)
            else:
                out += text(f" {message.content_type}")
        out.append(MESSAGE)
        for content in message.content:
            if isinstance(content, TextContent):
                out += text(content.text)
            elif isinstance(content, SystemContent):
                _expect_role(content, role, Role.SYSTEM)
                out += text(system_text(content, options.conversation_has_function_tools))
            elif isinstance(content, DeveloperContent):
                _expect_role(content, role, Role.DEVELOPER)
                out += text(developer_text(content))
            else:
                raise HarmonyError(f"cannot render content of type {type(content).__name__}")
        out.append(CALL if role == Role.ASSISTANT and message.recipient is not None else END)

    # -- parsing --------------------------------------------------------------------------

    def parse_messages_from_completion_tokens(
        self, tokens: Sequence[int], role: Role | None = None, *, strict: bool = True
    ) -> list[Message]:
        """Messages in a completion; with `role`, the tokens start right after `<|start|>{role}`.

        `strict=False` never raises: it recovers what it can (see `StreamableParser`).
        """
        from agent.harmony.parse import StreamableParser

        parser = StreamableParser(self, role, strict=strict)
        for token in tokens:
            parser.process(token)
        parser.process_eos()
        return parser.messages

    # -- tokens ---------------------------------------------------------------------------

    def encode(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """Encode text; text that looks like a special token raises unless allowed or disallowed."""
        specials = self.special_tokens_set
        allowed = specials if allowed_special == "all" else set(allowed_special)
        disallowed = specials - allowed if disallowed_special == "all" else set(disallowed_special)
        if disallowed:
            found = _special_token_pattern(frozenset(disallowed)).search(text)
            if found:
                token = found.group()
                raise HarmonyError(
                    f"text contains {token!r}, which is a special token. To encode it as plain "
                    f"text pass disallowed_special=() (what rendering does for all message "
                    f"text); to encode it as the special token pass allowed_special={{{token!r}}}."
                )
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return self._tokenizer.encode(text, allowed_special=allowed, disallowed_special=())

    def decode(self, tokens: Sequence[int], errors: str = "replace") -> str:
        """Decode to text; invalid UTF-8 is replaced by default (see `decode_utf8`)."""
        return self.decode_bytes(tokens).decode("utf-8", errors=errors)

    def decode_utf8(self, tokens: Sequence[int]) -> str:
        """Decode to text, raising `HarmonyError` if the bytes are not valid UTF-8."""
        try:
            return self.decode_bytes(tokens).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HarmonyError(f"tokens do not decode to valid UTF-8: {exc}") from exc

    def decode_bytes(self, tokens: Sequence[int]) -> bytes:
        try:
            return self._tokenizer.decode_bytes(list(tokens))
        except (KeyError, ValueError, OverflowError) as exc:
            bad = [t for t in tokens if not 0 <= t < self._tokenizer.n_vocab]
            raise HarmonyError(
                f"invalid token id(s) {bad[:5]}: o200k_harmony ids run from 0 to "
                f"{self._tokenizer.n_vocab - 1}"
            ) from exc

    def is_special_token(self, token: int) -> bool:
        return FIRST_SPECIAL_ID <= token <= LAST_SPECIAL_ID

    def stop_tokens(self) -> list[int]:
        """Tokens that end a sampled message: `<|return|>`, `<|end|>`, `<|call|>`."""
        return [RETURN, END, CALL]

    def stop_tokens_for_assistant_actions(self) -> list[int]:
        """Tokens that end an assistant turn: `<|return|>` (answer) and `<|call|>` (tool call)."""
        return [RETURN, CALL]


def _expect_role(content: object, actual: Role, expected: Role) -> None:
    if actual != expected:
        raise HarmonyError(
            f"{type(content).__name__} belongs in a {expected.value} message, not a "
            f"{actual.value} message"
        )


def _has_function_tools(messages: list[Message]) -> bool:
    return any(
        isinstance(c, DeveloperContent)
        and c.tools is not None
        and "functions" in c.tools
        and bool(c.tools["functions"].tools)
        for m in messages
        for c in m.content
    )


def _dropped_analysis(messages: list[Message]) -> set[int]:
    """Indices of analysis messages the model should not see again.

    Once the latest assistant message is a final answer, the chain of thought before the
    first final answer is dropped; during a tool-calling turn it is kept.
    """
    last_assistant = next((m for m in reversed(messages) if m.author.role == Role.ASSISTANT), None)
    if last_assistant is None or last_assistant.channel != "final":
        return set()
    first_final = next((i for i, m in enumerate(messages) if m.channel == "final"), None)
    if first_final is None:
        return set()
    return {i for i, m in enumerate(messages[:first_final]) if m.channel == "analysis"}


@functools.lru_cache(maxsize=8)
def _special_token_pattern(tokens: frozenset[str]) -> re.Pattern[str]:
    """A regex finding any of `tokens`, longest first; compiled once (there are ~1,100)."""
    return re.compile("|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True)))


def load_harmony_encoding(name: str | HarmonyEncodingName) -> HarmonyEncoding:
    """The encoding by name; only `HarmonyGptOss` exists."""
    value = name.value if isinstance(name, HarmonyEncodingName) else str(name)
    if value != HarmonyEncodingName.HARMONY_GPT_OSS.value:
        raise HarmonyError(
            f"unknown encoding {value!r}: use HarmonyEncodingName.HARMONY_GPT_OSS ('HarmonyGptOss')"
        )
    return HarmonyEncoding(value)
