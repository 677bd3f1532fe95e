"""Streaming parser: completion token ids in, harmony messages out, one token at a time.

On well-formed completions it produces exactly openai-harmony's messages. Real deployments
also see malformed output (a stray token after a stop token, extra header words, an empty
channel, a missing `<|message|>`, a refusal with no header, channel markup inside content).
With `strict=True` each of these raises `HarmonyError` naming the token index and what was
expected; with `strict=False` the parser never raises, keeps every message it can, and
records what it repaired in `recoveries`.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from agent.harmony.chat import Author, Message, Role, TextContent
from agent.harmony.encoding import (
    CALL,
    CHANNEL,
    CONSTRAIN,
    CONSTRAIN_MARKER,
    END,
    MESSAGE,
    RETURN,
    START,
)
from agent.harmony.errors import HarmonyError
from agent.harmony.tokenizer import FIRST_SPECIAL_ID, LAST_SPECIAL_ID, token_bytes_table

if TYPE_CHECKING:
    from agent.harmony.encoding import HarmonyEncoding

STOP_TOKENS = frozenset({END, RETURN, CALL})
CHANNEL_MARKER = "<|channel|>"
_ROLES = {r.value: r for r in Role}
# Rust's `char::is_whitespace` (Unicode White_Space), which ends a channel name.
_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
)
_ASCII_SPACE = re.compile(r"[ \t\n\x0c\r]+")


class StreamState(Enum):
    EXPECT_START = "ExpectStart"
    HEADER = "Header"
    CONTENT = "Content"


@dataclass(frozen=True)
class Recovery:
    """One repair the lenient parser made: where, what was wrong, what it did instead."""

    token_index: int
    problem: str
    action: str

    def __str__(self) -> str:
        return f"token {self.token_index}: {self.problem}; {self.action}"


@dataclass
class _Header:
    author: Author
    recipient: str | None = None
    channel: str | None = None
    content_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "author": {"role": self.author.role.value, "name": self.author.name},
            "recipient": self.recipient,
            "channel": self.channel,
            "content_type": self.content_type,
        }


class StreamableParser:
    """Incremental parser. `role` is the role whose header the prompt already opened
    (`Role.ASSISTANT` for sampled completions); `None` parses whole rendered messages."""

    def __init__(
        self, encoding: HarmonyEncoding, role: Role | None, *, strict: bool = True
    ) -> None:
        self.encoding = encoding
        self.strict = strict
        self.recoveries: list[Recovery] = []
        self._bytes = token_bytes_table()
        self._given_role = Role(role) if role is not None else None
        self._next_role = self._given_role
        self._state = StreamState.HEADER if role is not None else StreamState.EXPECT_START
        self._tokens: list[int] = []
        self._messages: list[Message] = []
        self._header_tokens: list[int] = []
        self._header: _Header | None = None
        self._content: list[str] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._delta: str | None = None

    # -- feeding --------------------------------------------------------------------------

    def process(self, token: int) -> StreamableParser:
        index = len(self._tokens)
        self._tokens.append(token)
        self._delta = None
        if not 0 <= token <= LAST_SPECIAL_ID:
            self._problem(index, f"{token} is not a token id (0..{LAST_SPECIAL_ID})", "ignored it")
        elif self._state is StreamState.CONTENT:
            self._in_content(token, index)
        elif self._state is StreamState.HEADER:
            self._in_header(token, index)
        else:
            self._expect_start(token, index)
        return self

    def process_eos(self) -> StreamableParser:
        """The stream ended: complete a message cut off in its content."""
        index = len(self._tokens)
        self._delta = None
        if self._state is StreamState.CONTENT:
            self._finish_message()
        elif self._state is StreamState.HEADER:
            self._problem(
                index,
                "the stream ended inside a message header, before <|message|>",
                "kept the header text as the message",
            )
            self._finish_headerless(index)
        return self

    # -- states ---------------------------------------------------------------------------

    def _expect_start(self, token: int, index: int) -> None:
        if token == START:
            self._begin_header([])
            return
        if token in STOP_TOKENS or (self._is_special(token) and token != CHANNEL):
            self._problem(index, f"stray {self._describe(token)} between messages", "ignored it")
            return
        hint = ""
        if index == 0 and self._given_role is None:
            hint = (
                " If these tokens were sampled after `<|start|>assistant`, pass "
                "role=Role.ASSISTANT."
            )
        self._problem(
            index,
            f"expected <|start|> to begin a message, got {self._describe(token)}.{hint}",
            "assumed a new assistant message began here",
        )
        self._next_role = self._last_role()
        self._begin_header([token])

    def _in_header(self, token: int, index: int) -> None:
        if token == MESSAGE:
            self._header = self._parse_header(index)
            self._next_role = None
            self._state = StreamState.CONTENT
        elif token in STOP_TOKENS:
            self._problem(
                index,
                f"{self._describe(token)} ended a header that had no <|message|>",
                "kept the header text as the message",
            )
            self._finish_headerless(index)
        elif token == START:
            if index == 0 and self._given_role is not None:
                self._problem(
                    index,
                    f"the parser was told the <|start|>{self._given_role.value} header is "
                    f"already in the prompt (role={self._given_role.value}), but the tokens "
                    "begin with <|start|>: they look like a whole rendered conversation. Pass "
                    "only the tokens sampled after the prompt, or role=None to parse rendered "
                    "messages",
                    "parsed them as whole messages",
                )
            else:
                self._problem(
                    index, "<|start|> inside a message header", "dropped the unfinished header"
                )
            self._next_role = None
            self._begin_header([])
        elif token in (CHANNEL, CONSTRAIN) or not self._is_special(token):
            self._header_tokens.append(token)
        else:
            self._problem(index, f"{self._describe(token)} inside a message header", "dropped it")

    def _in_content(self, token: int, index: int) -> None:
        if token in STOP_TOKENS:
            self._finish_message()
        elif not self._is_special(token):
            text = self._decoder.decode(self._bytes[token])
            if text:
                self._content.append(text)
                self._delta = text
        elif token == START:
            self._problem(
                index,
                "<|start|> inside message content (expected content or <|end|>)",
                "ended the message there and began a new one",
            )
            self._finish_message()
            self._begin_header([])
        elif token == CHANNEL:
            role = self._header.author.role if self._header else Role.ASSISTANT
            self._problem(
                index,
                "<|channel|> inside message content (expected content or <|end|>)",
                f"ended the message there and began a new {role.value} message",
            )
            self._finish_message()
            self._next_role = role
            self._begin_header([token])
        else:
            self._problem(
                index,
                f"{self._describe(token)} inside message content (expected content or <|end|>)",
                "dropped it",
            )

    # -- building messages ----------------------------------------------------------------

    def _begin_header(self, tokens: list[int]) -> None:
        self._header_tokens = tokens
        self._state = StreamState.HEADER

    def _finish_message(self) -> None:
        header = self._header
        text = "".join(self._content) + self._decoder.decode(b"", final=True)
        self._messages.append(
            Message(
                author=header.author,
                content=[TextContent(text=text)],
                channel=header.channel,
                recipient=header.recipient,
                content_type=header.content_type,
            )
        )
        self._header = None
        self._content = []
        self._decoder.reset()
        self._state = StreamState.EXPECT_START

    def _finish_headerless(self, index: int) -> None:
        """A message whose `<|message|>` never came: channel and recipient if present, the
        rest of the text as content (how refusals without a header arrive)."""
        text = self._decode_header(index)
        self._state = StreamState.EXPECT_START
        role = self._next_role
        self._next_role = None
        if not text.strip():
            return
        channel = None
        found = text.find(CHANNEL_MARKER)
        if found >= 0:
            channel, rest = _split_channel(text[found + len(CHANNEL_MARKER) :])
            text = text[:found] + rest
        text = text.strip()
        first, _, after = text.partition(" ")
        if role is None:
            role = _ROLES.get(first, Role.ASSISTANT)
            text = after if first in _ROLES else text
        elif first == role.value:
            text = after
        recipient = None
        first, _, after = text.lstrip().partition(" ")
        if first.startswith("to="):
            recipient, text = first[3:], after
        message = Message.from_role_and_content(role, text.strip())
        message.channel = channel or None
        message.recipient = recipient
        self._messages.append(message)

    def _decode_header(self, index: int) -> str:
        raw = b"".join(self._bytes[t] for t in self._header_tokens)
        self._header_tokens = []
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self._problem(index, "the message header is not valid UTF-8", "replaced bad bytes")
            return raw.decode("utf-8", errors="replace")

    def _parse_header(self, index: int) -> _Header:
        """Role, recipient, channel and content type from the header text (both orders of
        channel and recipient, as the model emits either)."""
        text = self._decode_header(index)
        channel = None
        found = text.find(CHANNEL_MARKER)
        if found >= 0:
            channel, rest = _split_channel(text[found + len(CHANNEL_MARKER) :])
            if not channel:
                self._problem(index, "<|channel|> with no channel name", "left the channel unset")
                channel = None
            text = text[:found] + rest
        text = text.strip()
        if CONSTRAIN_MARKER in text:
            text = text.replace(CONSTRAIN_MARKER, " " + CONSTRAIN_MARKER).strip()
        words = [w for w in _ASCII_SPACE.split(text) if w]

        role = self._next_role
        name = None
        if role is None:
            if not words:
                self._problem(index, "the message header has no role", "assumed assistant")
                role = Role.ASSISTANT
            elif words[0] in _ROLES:
                role = _ROLES[words[0]]
            elif len(words) > 1 or words[0].startswith("to="):
                role, name = Role.TOOL, words.pop(0)
            else:
                self._problem(
                    index,
                    f"unknown role {words[0]!r} in the message header "
                    f"(roles: {', '.join(_ROLES)}; a tool's header is 'NAME to=assistant')",
                    "assumed assistant",
                )
                role = Role.ASSISTANT
        if words and words[0] == role.value:
            words.pop(0)

        recipient, content_type, extra = _recipient_and_content_type(words)
        if extra:
            self._problem(
                index,
                f"unexpected words in the message header: {' '.join(extra)!r}",
                "ignored them",
            )
            recipient, content_type = _lenient_recipient_and_content_type(words)
        return _Header(Author(role=role, name=name), recipient, channel, content_type)

    # -- errors and recoveries ------------------------------------------------------------

    def _problem(self, index: int, problem: str, action: str) -> None:
        if self.strict:
            raise HarmonyError(f"token {index}: {problem}", token_index=index)
        self.recoveries.append(Recovery(index, problem, action))

    def _is_special(self, token: int) -> bool:
        return token >= FIRST_SPECIAL_ID

    def _describe(self, token: int) -> str:
        text = self._bytes[token].decode("utf-8", errors="replace")
        return text if self._is_special(token) else f"text {text!r} (id {token})"

    def _last_role(self) -> Role:
        return self._messages[-1].author.role if self._messages else Role.ASSISTANT

    # -- what the caller reads ------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        return list(self._messages)

    @property
    def tokens(self) -> list[int]:
        return list(self._tokens)

    @property
    def state(self) -> StreamState:
        return self._state

    @property
    def state_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"state": self._state.value}
        if self._state is StreamState.HEADER:
            data["header_tokens"] = list(self._header_tokens)
        elif self._state is StreamState.CONTENT:
            data["header"] = self._header.to_dict()
            data["content_tokens"] = self.encoding.tokenizer.encode_ordinary(self.current_content)
        return data

    @property
    def current_content(self) -> str:
        return "".join(self._content) if self._state is StreamState.CONTENT else ""

    @property
    def current_role(self) -> Role | None:
        if self._state is StreamState.CONTENT:
            return self._header.author.role
        return self._next_role

    @property
    def current_channel(self) -> str | None:
        return self._header.channel if self._state is StreamState.CONTENT else None

    @property
    def current_recipient(self) -> str | None:
        return self._header.recipient if self._state is StreamState.CONTENT else None

    @property
    def current_content_type(self) -> str | None:
        return self._header.content_type if self._state is StreamState.CONTENT else None

    @property
    def last_content_delta(self) -> str | None:
        """Text added by the last token; None when it added none (e.g. half a UTF-8 char)."""
        return self._delta


def _split_channel(after_marker: str) -> tuple[str, str]:
    """The channel name (up to whitespace or `<`) and the header text after it."""
    end = next(
        (i for i, ch in enumerate(after_marker) if ch in _WHITESPACE or ch == "<"),
        len(after_marker),
    )
    return after_marker[:end], after_marker[end:]


def _recipient_and_content_type(words: list[str]) -> tuple[str | None, str | None, list[str]]:
    """openai-harmony's reading of the words after the role: `[to=]recipient [content_type]`.
    Returns what is left over as the third item (a malformed header when non-empty)."""
    words = list(words)
    if not words:
        return None, None, []
    count = len(words)
    last = words.pop()
    recipient = content_type = None
    if last.startswith("to="):
        recipient = last[3:]
    elif count == 1 and not last.startswith(CONSTRAIN_MARKER):
        recipient = last
    else:
        content_type = last
        if words:
            raw = words.pop()
            recipient = raw[3:] if raw.startswith("to=") else raw
    return recipient, content_type, words


def _lenient_recipient_and_content_type(words: list[str]) -> tuple[str | None, str | None]:
    """For headers with extra words: the last `to=` word is the recipient; the content type
    is a `<|constrain|>` word, else the word right after the recipient."""
    targets = [i for i, w in enumerate(words) if w.startswith("to=")]
    recipient = words[targets[-1]][3:] if targets else None
    constrained = [w for w in words if w.startswith(CONSTRAIN_MARKER)]
    if constrained:
        return recipient, constrained[-1]
    if targets and targets[-1] + 1 < len(words):
        return recipient, words[targets[-1] + 1]
    return recipient, None
