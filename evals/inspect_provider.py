"""Inspect AI model provider: `inspect eval TASK --model oss-agent/<checkpoint path|URL>`.

Registered through the `inspect_ai` entry point (install the `inspect` extra). Each
`generate` renders Inspect's chat as one harmony prompt (Inspect's system messages become
developer instructions, its tools harmony function tools), samples one assistant turn
from the engine and hands back the reasoning, the answer and any function calls; Inspect
runs the tools. `reasoning_effort` passes through (none / minimal -> low, xhigh / max ->
high).
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
from typing import Any

from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    ContentReasoning,
    ContentText,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    modelapi,
)
from inspect_ai.tool import ToolCall, ToolChoice, ToolInfo

from agent.harmony import (
    Author,
    Conversation,
    DeveloperContent,
    HarmonyEncodingName,
    Message,
    ReasoningEffort,
    Role,
    SystemContent,
    ToolDescription,
    load_harmony_encoding,
)
from agent.loop import load_engine

EFFORTS = {
    "none": ReasoningEffort.LOW,
    "minimal": ReasoningEffort.LOW,
    "low": ReasoningEffort.LOW,
    "medium": ReasoningEffort.MEDIUM,
    "high": ReasoningEffort.HIGH,
    "xhigh": ReasoningEffort.HIGH,
    "max": ReasoningEffort.HIGH,
}
DEFAULT_MAX_TOKENS = 32768


def harmony_messages(
    input: list[ChatMessage], tools: list[ToolInfo], effort: ReasoningEffort
) -> list[Message]:
    """Inspect's chat as harmony messages, header first."""
    system = (
        SystemContent.new()
        .with_reasoning_effort(effort)
        .with_conversation_start_date(datetime.date.today().isoformat())
    )
    header = [Message.from_role_and_content(Role.SYSTEM, system)]
    instructions = "\n\n".join(m.text for m in input if m.role == "system")
    if instructions or tools:
        developer = DeveloperContent.new()
        if instructions:
            developer = developer.with_instructions(instructions)
        if tools:
            developer = developer.with_function_tools(
                [
                    ToolDescription.new(
                        t.name, t.description, t.parameters.model_dump(exclude_none=True)
                    )
                    for t in tools
                ]
            )
        header.append(Message.from_role_and_content(Role.DEVELOPER, developer))
    body: list[Message] = []
    for m in input:
        if m.role == "user":
            body.append(Message.from_role_and_content(Role.USER, m.text))
        elif m.role == "assistant":
            if m.text:
                body.append(
                    Message.from_role_and_content(Role.ASSISTANT, m.text).with_channel("final")
                )
            for call in m.tool_calls or []:
                body.append(
                    Message.from_role_and_content(Role.ASSISTANT, json.dumps(call.arguments))
                    .with_channel("commentary")
                    .with_recipient(f"functions.{call.function}")
                    .with_content_type("<|constrain|>json")
                )
        elif m.role == "tool":
            author = Author.new(Role.TOOL, f"functions.{m.function}")
            text = m.error.message if m.error is not None else m.text
            body.append(
                Message.from_author_and_content(author, text)
                .with_channel("commentary")
                .with_recipient("assistant")
            )
    return header + body


@modelapi(name="oss-agent")
class OssAgentModel(ModelAPI):
    """Any oss-agent engine: a gpt-oss checkpoint folder or an `http(s)://` server."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig | None = None,
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config or GenerateConfig())
        self.engine = load_engine(base_url or model_name)
        self.encoding = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
        # A local model runs one request at a time; servers take many.
        self._lock = asyncio.Lock() if not (base_url or model_name).startswith("http") else None
        self._ids = itertools.count(1)

    def close(self) -> None:
        close = getattr(self.engine, "close", None)
        if close is not None:
            close()

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        effort = EFFORTS.get(config.reasoning_effort or "medium", ReasoningEffort.MEDIUM)
        conversation = Conversation.from_messages(harmony_messages(input, tools, effort))
        prompt = self.encoding.render_conversation_for_completion(conversation, Role.ASSISTANT)
        stops = self.encoding.stop_tokens_for_assistant_actions()
        max_tokens = config.max_tokens or DEFAULT_MAX_TOKENS

        def sample() -> list[int]:
            return list(
                self.engine.generate(
                    prompt,
                    max_tokens=max_tokens,
                    temperature=1.0 if config.temperature is None else config.temperature,
                    top_p=1.0 if config.top_p is None else config.top_p,
                    seed=config.seed,
                    stop_tokens=stops,
                )
            )

        if self._lock is not None:
            async with self._lock:
                tokens = await asyncio.to_thread(sample)
        else:
            tokens = await asyncio.to_thread(sample)
        return self._output(tokens, stops, len(prompt))

    def _output(self, tokens: list[int], stops: list[int], prompt_tokens: int) -> ModelOutput:
        messages = self.encoding.parse_messages_from_completion_tokens(
            tokens, Role.ASSISTANT, strict=False
        )
        reasoning = "\n".join(m.text for m in messages if m.channel == "analysis")
        answer = "\n".join(m.text for m in messages if m.channel != "analysis" and not m.recipient)
        calls = []
        for m in messages:
            if not (m.recipient or "").startswith("functions."):
                continue
            try:
                arguments, error = json.loads(m.text or "{}"), None
            except json.JSONDecodeError as exc:
                arguments, error = {}, f"arguments are not JSON: {exc}"
            calls.append(
                ToolCall(
                    id=f"call_{next(self._ids)}",
                    function=m.recipient.removeprefix("functions."),
                    arguments=arguments if isinstance(arguments, dict) else {},
                    parse_error=error,
                )
            )
        content: list[Any] = []
        if reasoning:
            content.append(ContentReasoning(reasoning=reasoning))
        content.append(ContentText(text=answer))
        if calls:
            stop_reason = "tool_calls"
        elif tokens and tokens[-1] in stops:
            stop_reason = "stop"
        else:
            stop_reason = "max_tokens"
        reasoning_tokens = len(self.encoding.encode(reasoning)) if reasoning else 0
        return ModelOutput(
            model=self.model_name,
            choices=[
                ChatCompletionChoice(
                    message=ChatMessageAssistant(
                        content=content, tool_calls=calls or None, model=self.model_name
                    ),
                    stop_reason=stop_reason,
                )
            ],
            usage=ModelUsage(
                input_tokens=prompt_tokens,
                output_tokens=len(tokens),
                total_tokens=prompt_tokens + len(tokens),
                reasoning_tokens=reasoning_tokens,
            ),
        )
