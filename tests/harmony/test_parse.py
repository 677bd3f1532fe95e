"""Parsing: identical to openai-harmony on well-formed output; strict errors and lenient
recovery on the malformed output real deployments see."""

from __future__ import annotations

import openai_harmony
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import chat_messages, conversations

from agent.harmony import (
    Conversation,
    HarmonyError,
    Message,
    Role,
    StreamableParser,
    StreamState,
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
START, END, MESSAGE, CHANNEL, RETURN, CALL = 200006, 200007, 200008, 200005, 200002, 200012


def dicts(messages) -> list[dict]:
    return [m.to_dict() for m in messages]


def completion(encoding, markup: str) -> list[int]:
    """Token ids of harmony markup, special tokens included, as a model would sample them."""
    return encoding.encode(markup, allowed_special="all")


def assistant_completion(encoding, messages: list[Message]) -> list[int]:
    """What the model samples after the prompt's `<|start|>assistant`."""
    tokens = encoding.render_conversation(Conversation.from_messages(messages))
    prefix = [START, *encoding.encode("assistant")]
    assert tokens[: len(prefix)] == prefix
    return tokens[len(prefix) :]


assistant_messages = chat_messages().filter(lambda m: m.author.role == Role.ASSISTANT)


def without_oracle_bug(messages: list[Message]) -> bool:
    """openai-harmony 0.0.8 reads a lone `<|constrain|>json` header word as the recipient; its
    later sources (and we) read it as the content type. Such headers are left out."""
    return not any(
        m.content_type
        and m.content_type.startswith("<|constrain|>")
        and m.recipient in (None, "all")
        for m in messages
    )


@FAST
@given(conversation=conversations())
def test_rendered_conversations_parse_like_openai_harmony(encoding, oracle, conversation):
    assume(without_oracle_bug(conversation.messages))
    tokens = encoding.render_conversation(conversation)
    theirs = oracle.parse_messages_from_completion_tokens(tokens, None)
    assert dicts(encoding.parse_messages_from_completion_tokens(tokens, None)) == dicts(theirs)


@FAST
@given(messages=st.lists(assistant_messages, min_size=1, max_size=4))
def test_sampled_completions_parse_like_openai_harmony(encoding, oracle, messages):
    assume(without_oracle_bug(messages))
    tokens = assistant_completion(encoding, messages)
    theirs = oracle.parse_messages_from_completion_tokens(tokens, openai_harmony.Role.ASSISTANT)
    ours = encoding.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT)
    assert dicts(ours) == dicts(theirs)


@FAST
@given(messages=st.lists(assistant_messages, min_size=1, max_size=3), cut=st.integers(0, 60))
def test_streaming_state_matches_openai_harmony_token_by_token(encoding, oracle, messages, cut):
    """Every observable after every token: role, channel, recipient, content type, content,
    delta; the stream may also be cut short (truncation)."""
    assume(without_oracle_bug(messages))
    tokens = assistant_completion(encoding, messages)
    tokens = tokens[: max(1, len(tokens) - cut)]
    ours = StreamableParser(encoding, Role.ASSISTANT)
    theirs = openai_harmony.StreamableParser(oracle, openai_harmony.Role.ASSISTANT)
    for token in tokens:
        ours.process(token)
        theirs.process(token)
        assert ours.state.value == theirs.state.value
        assert ours.current_role == (theirs.current_role and Role(theirs.current_role.value))
        assert ours.current_channel == theirs.current_channel
        assert ours.current_recipient == theirs.current_recipient
        assert ours.current_content_type == theirs.current_content_type
        assert ours.current_content == theirs.current_content
        assert ours.last_content_delta == theirs.last_content_delta
        assert dicts(ours.messages) == dicts(theirs.messages)
    if ours.state is not StreamState.HEADER:  # both raise on a stream cut inside a header
        assert dicts(ours.process_eos().messages) == dicts(theirs.process_eos().messages)


def test_a_character_split_across_tokens_has_no_delta_until_complete(encoding):
    text = "𝔘"  # one character, several byte-level tokens
    pieces = encoding.encode(text)
    assert len(pieces) > 1
    parser = StreamableParser(encoding, Role.ASSISTANT)
    for token in completion(encoding, "<|channel|>final<|message|>"):
        parser.process(token)
    deltas = [parser.process(t).last_content_delta for t in pieces]
    assert deltas[:-1] == [None] * (len(pieces) - 1)
    assert deltas[-1] == text


def test_streaming_and_batch_parsing_agree(encoding):
    tokens = completion(
        encoding,
        "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>commentary "
        'to=functions.f <|constrain|>json<|message|>{"a": 1}<|call|>',
    )
    parser = StreamableParser(encoding, Role.ASSISTANT)
    for token in tokens:
        parser.process(token)
    batch = encoding.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT)
    assert dicts(parser.process_eos().messages) == dicts(batch)
    assert [m.channel for m in batch] == ["analysis", "commentary"]
    assert batch[1].recipient == "functions.f" and batch[1].content_type == "<|constrain|>json"


def test_recipient_before_and_after_the_channel_both_parse(encoding):
    before = "to=functions.f<|channel|>commentary json<|message|>{}<|call|>"
    after = "<|channel|>commentary to=functions.f json<|message|>{}<|call|>"
    for markup in (before, after):
        [message] = encoding.parse_messages_from_completion_tokens(
            completion(encoding, markup), Role.ASSISTANT
        )
        assert (message.recipient, message.channel, message.content_type) == (
            "functions.f",
            "commentary",
            "json",
        )


# -- malformed output: strict raises naming the token, lenient recovers ------------------

MALFORMED = {
    "stray stop token after a stop token": (
        "<|channel|>final<|message|>Hi.<|return|><|end|>",
        [("final", None, "Hi.")],
    ),
    "extra words in the header": (
        "<|channel|>commentary to=functions.f please <|constrain|>json<|message|>{}<|call|>",
        [("commentary", "functions.f", "{}")],
    ),
    "empty channel": ("<|channel|><|message|>Hello<|end|>", [(None, None, "Hello")]),
    "missing <|message|>": (
        "<|channel|>final The answer is 4.<|return|>",
        [("final", None, "The answer is 4.")],
    ),
    "refusal with no header": (
        "I'm sorry, but I can't help with that.<|return|>",
        [(None, None, "I'm sorry, but I can't help with that.")],
    ),
    "channel markup leaking into content": (
        "<|channel|>analysis<|message|>Think.<|channel|>final<|message|>42<|return|>",
        [("analysis", None, "Think."), ("final", None, "42")],
    ),
    "missing <|start|> after <|end|>": (
        "<|channel|>analysis<|message|>Think.<|end|><|channel|>final<|message|>42<|return|>",
        [("analysis", None, "Think."), ("final", None, "42")],
    ),
    "truncated inside a header": ("<|channel|>final", [("final", None, "")]),
}


@pytest.mark.parametrize("markup, expected", MALFORMED.values(), ids=MALFORMED.keys())
def test_strict_parsing_names_the_token_where_output_went_wrong(encoding, markup, expected):
    tokens = completion(encoding, markup)
    with pytest.raises(HarmonyError, match=r"^token \d+: ") as error:
        encoding.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT)
    assert 0 <= error.value.token_index <= len(tokens)


@pytest.mark.parametrize("markup, expected", MALFORMED.values(), ids=MALFORMED.keys())
def test_lenient_parsing_recovers_each_message_and_reports_it(encoding, markup, expected):
    parser = StreamableParser(encoding, Role.ASSISTANT, strict=False)
    for token in completion(encoding, markup):
        parser.process(token)
    messages = parser.process_eos().messages
    assert [(m.channel, m.recipient, m.text) for m in messages] == expected
    assert all(m.author.role == Role.ASSISTANT for m in messages)
    assert parser.recoveries, "every repair is reported"


def test_truncation_inside_content_completes_the_message_without_error(encoding):
    tokens = completion(encoding, "<|channel|>final<|message|>The answer is")
    [message] = encoding.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT)
    assert (message.channel, message.text) == ("final", "The answer is")


def test_passing_the_whole_prompt_says_to_pass_only_the_completion(encoding):
    conversation = Conversation.from_messages([Message.from_role_and_content(Role.USER, "Hi")])
    prompt = encoding.render_conversation_for_completion(conversation, Role.ASSISTANT)
    tokens = prompt + completion(encoding, "<|channel|>final<|message|>Hello!<|return|>")
    with pytest.raises(HarmonyError, match="only the tokens sampled after the prompt") as error:
        encoding.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT)
    assert error.value.token_index == 0
    recovered = encoding.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT, strict=False)
    assert [(m.author.role, m.text) for m in recovered] == [
        (Role.USER, "Hi"),
        (Role.ASSISTANT, "Hello!"),
    ]


def test_completion_tokens_without_a_role_suggest_passing_the_role(encoding):
    tokens = completion(encoding, "<|channel|>final<|message|>Hello!<|return|>")
    with pytest.raises(HarmonyError, match=r"pass role=Role\.ASSISTANT"):
        encoding.parse_messages_from_completion_tokens(tokens, None)


def test_an_unknown_role_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown role 'bot': use one of 'user'"):
        Role("bot")
    with pytest.raises(ValueError, match=r"Role\.TOOL"):
        Role("functions.get_weather")


def test_an_invalid_token_id_is_an_error_not_a_crash(encoding):
    with pytest.raises(HarmonyError, match="not a token id"):
        encoding.parse_messages_from_completion_tokens([5, 999_999], Role.ASSISTANT)


token_ids = st.one_of(
    st.sampled_from([START, END, MESSAGE, CHANNEL, RETURN, CALL, 200003, 199999, 200100]),
    st.integers(0, 201088),
    st.integers(-5, 300_000),
    st.sampled_from([17360, 173781, 1428, 1721, 49159, 316]),  # system, assistant, user, ...
)


@settings(max_examples=500, deadline=None)
@given(tokens=st.lists(token_ids, max_size=40), role=st.sampled_from([None, Role.ASSISTANT]))
def test_lenient_parsing_never_raises_on_any_token_sequence(encoding, tokens, role):
    parser = StreamableParser(encoding, role, strict=False)
    for token in tokens:
        parser.process(token)
        assert parser.last_content_delta is None or isinstance(parser.last_content_delta, str)
    messages = parser.process_eos().messages
    assert all(isinstance(m.text, str) for m in messages)
    batch = encoding.parse_messages_from_completion_tokens(tokens, role, strict=False)
    assert dicts(batch) == dicts(messages)


def test_a_lone_constrained_content_type_is_not_taken_for_a_recipient(encoding):
    tokens = completion(encoding, "<|channel|>final <|constrain|>json<|message|>{}<|return|>")
    [message] = encoding.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT)
    assert (message.recipient, message.content_type) == (None, "<|constrain|>json")
