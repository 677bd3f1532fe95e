"""Harmony speed, ours vs openai-harmony in the same run.

    python benchmarks/harmony_speed.py [--turns 100] [--repeats 5]

1. Render: a long agent conversation (system + tools, developer + function tools, then
   `turns` rounds of user / analysis / tool call / tool result / final answer), rendered for
   completion. Best of `repeats`.
2. Streaming parse: the assistant side of that conversation fed token by token to each
   library's streaming parser, reading the content delta after every token as a UI does.
Ratios > 1 mean ours is faster.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import agent.harmony as ours

os.environ.setdefault("TIKTOKEN_ENCODINGS_BASE", str(Path(ours.__file__).parent))
import openai_harmony as theirs


def build_conversation(lib, turns: int):
    tool = lib.ToolDescription.new(
        "lookup",
        "Looks a term up in the knowledge base.",
        {
            "type": "object",
            "properties": {
                "term": {"type": "string", "description": "What to look up"},
                "limit": {"type": "integer", "default": 5},
                "mode": {"type": "string", "enum": ["exact", "fuzzy"]},
            },
            "required": ["term"],
        },
    )
    messages = [
        lib.Message.from_role_and_content(
            lib.Role.SYSTEM, lib.SystemContent.new().with_browser_tool().with_python_tool()
        ),
        lib.Message.from_role_and_content(
            lib.Role.DEVELOPER,
            lib.DeveloperContent.new().with_instructions("Be precise.").with_function_tools([tool]),
        ),
    ]
    for i in range(turns):
        messages += [
            lib.Message.from_role_and_content(lib.Role.USER, f"Question {i}: what is item {i}?"),
            lib.Message.from_role_and_content(
                lib.Role.ASSISTANT, f"I should look up item {i} before answering. " * 5
            ).with_channel("analysis"),
            lib.Message.from_role_and_content(lib.Role.ASSISTANT, f'{{"term": "item {i}"}}')
            .with_channel("commentary")
            .with_recipient("functions.lookup")
            .with_content_type("<|constrain|>json"),
            lib.Message.from_author_and_content(
                lib.Author.new(lib.Role.TOOL, "functions.lookup"),
                f'{{"result": "item {i} is a widget, 数学 ✓"}}',
            )
            .with_channel("commentary")
            .with_recipient("assistant"),
            lib.Message.from_role_and_content(
                lib.Role.ASSISTANT, f"Item {i} is a widget. " * 10
            ).with_channel("final"),
        ]
    return lib.Conversation.from_messages(messages)


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def stream(lib, encoding, tokens: list[int]) -> None:
    parser = lib.StreamableParser(encoding, None)
    for token in tokens:
        parser.process(token)
        parser.last_content_delta  # noqa: B018 - what a UI reads after each token
    parser.process_eos()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    our_enc = ours.load_harmony_encoding(ours.HarmonyEncodingName.HARMONY_GPT_OSS)
    their_enc = theirs.load_harmony_encoding(theirs.HarmonyEncodingName.HARMONY_GPT_OSS)
    our_conv, their_conv = (build_conversation(lib, args.turns) for lib in (ours, theirs))

    our_tokens = our_enc.render_conversation_for_completion(our_conv, ours.Role.ASSISTANT)
    their_tokens = their_enc.render_conversation_for_completion(their_conv, theirs.Role.ASSISTANT)
    assert our_tokens == their_tokens, "renderings differ: run the tests"
    config = ours.RenderConversationConfig(auto_drop_analysis=False)
    parse_tokens = our_enc.render_conversation(our_conv, config)

    render_ours = best_of(
        args.repeats,
        lambda: our_enc.render_conversation_for_completion(our_conv, ours.Role.ASSISTANT),
    )
    render_theirs = best_of(
        args.repeats,
        lambda: their_enc.render_conversation_for_completion(their_conv, theirs.Role.ASSISTANT),
    )
    parse_ours = best_of(args.repeats, lambda: stream(ours, our_enc, parse_tokens))
    parse_theirs = best_of(args.repeats, lambda: stream(theirs, their_enc, parse_tokens))

    n_messages, n_render, n_parse = len(our_conv.messages), len(our_tokens), len(parse_tokens)
    print(f"conversation: {n_messages} messages, {n_render} prompt tokens")
    print(f"{'':34}{'ours':>12}{'openai-harmony':>16}{'ratio':>8}")
    print(
        f"{'render for completion (ms)':34}{render_ours * 1e3:12.2f}"
        f"{render_theirs * 1e3:16.2f}{render_theirs / render_ours:8.2f}"
    )
    print(
        f"{f'streaming parse, {n_parse} tok (tok/s)':34}{n_parse / parse_ours:12,.0f}"
        f"{n_parse / parse_theirs:16,.0f}{parse_theirs / parse_ours:8.2f}"
    )
    print(
        f"{'per process() call (us)':34}{parse_ours / n_parse * 1e6:12.2f}"
        f"{parse_theirs / n_parse * 1e6:16.2f}"
    )


if __name__ == "__main__":
    main()
