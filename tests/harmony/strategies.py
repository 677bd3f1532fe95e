"""Hypothesis strategies for harmony conversations, shared by the differential tests."""

from __future__ import annotations

from hypothesis import strategies as st

from agent.harmony import (
    Author,
    Conversation,
    DeveloperContent,
    Message,
    ReasoningEffort,
    Role,
    SystemContent,
    ToolDescription,
    ToolNamespaceConfig,
)

# Text the model and users produce: unicode, newlines, and strings that look like markup.
TRICKY = [
    "<|end|>",
    "<|start|>",
    "<|channel|>",
    "<|message|>",
    "to=functions.x",
    "\n\n",
    "【1†L2】",
]
text = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from([*TRICKY, "hello", " ", "é", "数学", "🙂", "json"]), max_size=6).map(
        "".join
    ),
)
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.sampled_from([0.5, -1.25, 3.0]),
    text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(words, inner, max_size=3),
    max_leaves=6,
)


def _annotated(schema: st.SearchStrategy[dict]) -> st.SearchStrategy[dict]:
    """Add the optional keywords the renderer turns into comments."""
    extras = st.fixed_dictionaries(
        {},
        optional={
            "description": text,
            "default": json_values,
            "nullable": st.booleans(),
            "title": text,
            "examples": st.lists(st.one_of(text, st.integers()), max_size=2),
        },
    )
    return st.tuples(schema, extras).map(lambda pair: {**pair[0], **pair[1]})


_leaf_schemas = st.one_of(
    st.just({"type": "string"}),
    st.lists(text, min_size=1, max_size=3).map(lambda v: {"type": "string", "enum": v}),
    st.sampled_from([{"type": "number"}, {"type": "integer"}, {"type": "boolean"}, {}]),
    st.lists(st.sampled_from(["number", "string", "integer", "null", "boolean"]), min_size=1).map(
        lambda kinds: {"type": kinds}
    ),
    st.just({"type": "array"}),
)


def _composite(inner: st.SearchStrategy[dict]) -> st.SearchStrategy[dict]:
    properties = st.dictionaries(names, _annotated(inner), max_size=4)
    objects = st.tuples(properties, st.booleans()).map(
        lambda t: {
            "type": "object",
            "properties": t[0],
            "required": [k for i, k in enumerate(t[0]) if (i % 2 == 0) == t[1]],
        }
    )
    arrays = inner.map(lambda items: {"type": "array", "items": items})
    one_of = st.lists(_annotated(inner), min_size=1, max_size=3).map(lambda v: {"oneOf": v})
    return st.one_of(objects, arrays, one_of)


schemas = st.recursive(_annotated(_leaf_schemas), _composite, max_leaves=8)
parameter_schemas = st.one_of(
    st.dictionaries(names, _annotated(schemas), max_size=4).map(
        lambda props: {"type": "object", "properties": props, "required": list(props)[:1]}
    ),
    schemas,
)

tool_descriptions = st.builds(
    ToolDescription.new, names, text, st.one_of(st.none(), parameter_schemas)
)
namespaces = st.builds(
    lambda name, description, tools: ToolNamespaceConfig(
        name=name, description=description, tools=tools
    ),
    names,
    st.one_of(st.none(), text),
    st.lists(tool_descriptions, max_size=3),
)


@st.composite
def system_contents(draw: st.DrawFn) -> SystemContent:
    content = SystemContent.new()
    if draw(st.booleans()):
        content.model_identity = draw(st.one_of(st.none(), text))
    content.reasoning_effort = draw(st.one_of(st.none(), st.sampled_from(list(ReasoningEffort))))
    content.conversation_start_date = draw(st.one_of(st.none(), st.just("2026-11-28")))
    content.knowledge_cutoff = draw(st.one_of(st.none(), st.just("2024-06")))
    if draw(st.booleans()):
        content.with_browser_tool()
    if draw(st.booleans()):
        content.with_python_tool()
    if draw(st.booleans()):
        content.with_tools(draw(namespaces))
    if draw(st.booleans()):
        content.with_required_channels(draw(st.lists(words, max_size=3)))
    return content


@st.composite
def developer_contents(draw: st.DrawFn) -> DeveloperContent:
    content = DeveloperContent.new()
    if draw(st.booleans()):
        content.with_instructions(draw(text))
    if draw(st.booleans()):
        content.with_function_tools(draw(st.lists(tool_descriptions, max_size=3)))
    return content


channels = st.sampled_from(["analysis", "commentary", "final"])
recipients = st.sampled_from(["functions.get_weather", "python", "browser.search", "all"])
content_types = st.sampled_from(["<|constrain|>json", "json", "code", "<|constrain|>"])


@st.composite
def chat_messages(draw: st.DrawFn) -> Message:
    """A user, assistant (answer, reasoning or tool call) or tool-result message."""
    kind = draw(st.sampled_from(["user", "assistant", "call", "call_channel_first", "tool"]))
    body = draw(text)
    if kind == "user":
        return Message.from_role_and_content(Role.USER, body)
    if kind == "assistant":
        return Message.from_role_and_content(Role.ASSISTANT, body).with_channel(draw(channels))
    if kind in ("call", "call_channel_first"):
        message = Message.from_role_and_content(Role.ASSISTANT, body)
        message.recipient = draw(recipients)
        message.channel = draw(st.one_of(st.none(), channels))
        message.content_type = draw(st.one_of(st.none(), content_types))
        return message
    author = Author.new(Role.TOOL, draw(recipients.filter(lambda r: r != "all")))
    message = Message.from_author_and_content(author, body).with_recipient("assistant")
    return message.with_channel(draw(channels))


@st.composite
def conversations(draw: st.DrawFn) -> Conversation:
    messages = []
    if draw(st.booleans()):
        messages.append(Message.from_role_and_content(Role.SYSTEM, draw(system_contents())))
    if draw(st.booleans()):
        messages.append(Message.from_role_and_content(Role.DEVELOPER, draw(developer_contents())))
    messages += draw(st.lists(chat_messages(), max_size=6))
    return Conversation.from_messages(messages)
