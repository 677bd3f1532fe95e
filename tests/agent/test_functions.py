"""Function tools: schema from type hints and docstrings, validation, execution."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field
from scripted_engine import ScriptedEngine

from agent.harmony import DeveloperContent, Message, Role
from agent.harmony.render import developer_text
from tools import FunctionTool, ToolError, function_tool


class Place(BaseModel):
    city: str
    country: str = "US"


@function_tool
def forecast(
    place: Place,
    unit: Literal["celsius", "fahrenheit"] = "celsius",
    days: int | None = None,
    tags: list[str] | None = None,
    detail: Annotated[bool, Field(description="Include hourly data.")] = False,
) -> dict:
    """Weather forecast for a place.

    Args:
        place: Where to look.
        days: How many days ahead,
            at most 10.
    """
    return {"city": place.city, "unit": unit, "days": days, "detail": detail}


def call(name: str, arguments: str) -> Message:
    return (
        Message.from_role_and_content(Role.ASSISTANT, arguments)
        .with_channel("commentary")
        .with_recipient(f"functions.{name}")
        .with_content_type("<|constrain|>json")
    )


def test_schema_from_hints_and_docstring() -> None:
    assert forecast.name == "functions.forecast"
    assert forecast.description == "Weather forecast for a place."
    assert forecast.in_system_message is False
    props = forecast.parameters["properties"]
    assert forecast.parameters["required"] == ["place"]
    assert props["place"]["description"] == "Where to look."
    assert props["place"]["properties"]["country"] == {"default": "US", "type": "string"}
    assert props["unit"] == {
        "default": "celsius",
        "enum": ["celsius", "fahrenheit"],
        "type": "string",
    }
    assert props["days"]["type"] == "integer" and props["days"]["nullable"] is True
    assert props["days"]["description"] == "How many days ahead, at most 10."
    assert props["tags"]["items"] == {"type": "string"}
    assert props["detail"]["description"] == "Include hourly data."
    assert "title" not in str(forecast.parameters) and "$ref" not in str(forecast.parameters)


def test_renders_as_the_model_expects() -> None:
    text = developer_text(DeveloperContent.new().with_function_tools([forecast.tool_description()]))
    assert "// Weather forecast for a place.\ntype forecast = (_: {" in text
    assert 'unit?: "celsius" | "fahrenheit", // default: celsius' in text
    assert "days?: number | null, // default: null" in text
    assert "tags?: string[] | null, // default: null" in text
    assert "    city: string," in text


def test_no_parameters() -> None:
    @function_tool(name="now", description="The time.")
    def current_time() -> str:
        return "12:00"

    assert (current_time.name, current_time.parameters) == ("functions.now", None)
    [reply] = asyncio.run(current_time.call(call("now", "")))
    assert reply.text == "12:00"
    assert current_time() == "12:00"  # still a plain function


def test_validated_arguments_reach_the_function() -> None:
    [reply] = asyncio.run(
        forecast.call(call("forecast", '{"place": {"city": "Oslo"}, "days": "3"}'))
    )
    assert reply.author.name == "functions.forecast" and reply.recipient == "assistant"
    assert reply.channel == "commentary"
    assert reply.text == '{"city": "Oslo", "unit": "celsius", "days": 3, "detail": false}'


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"place": {"city": "Oslo"}, "unit": "kelvin"}', "unit: Input should be 'celsius' or"),
        ('{"place": {}}', "place.city: Field required"),
        ("[1]", "expected a JSON object, got list"),
        ("{'place': 1}", "not valid JSON"),
    ],
)
def test_invalid_arguments_raise_tool_error(arguments: str, expected: str) -> None:
    with pytest.raises(ToolError, match=r"Invalid arguments for functions\.forecast") as info:
        asyncio.run(forecast.call(call("forecast", arguments)))
    assert expected in str(info.value)


def test_sync_functions_run_off_the_event_loop() -> None:
    seen = []

    def where() -> str:
        """Which thread runs me."""
        seen.append(threading.current_thread() is threading.main_thread())
        return "ok"

    asyncio.run(FunctionTool(where).call(call("where", "{}")))
    assert seen == [False]


def test_untyped_parameters_are_rejected_with_a_fix() -> None:
    def bad(x):
        return x

    with pytest.raises(TypeError, match="parameter 'x' has no type hint"):
        FunctionTool(bad)


def test_agent_rejects_a_function_it_cannot_describe_when_built() -> None:
    from agent import Agent

    def send(sock: socket.socket, text: str) -> None:
        """Send text."""

    with pytest.raises(TypeError, match=r"function tool print: parameter \*args cannot"):
        Agent(ScriptedEngine([]), tools=[print])
    with pytest.raises(TypeError, match=r"function tool send: parameter 'sock' has type"):
        Agent(ScriptedEngine([]), tools=[send])
    with pytest.raises(TypeError, match="42 is not a tool"):
        Agent(ScriptedEngine([]), tools=[42])


def test_agent_takes_plain_typed_functions_as_tools() -> None:
    from agent import Agent

    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    [tool] = Agent(ScriptedEngine([]), tools=[add]).tools
    assert isinstance(tool, FunctionTool) and tool.name == "functions.add"


def test_a_hint_that_cannot_be_resolved_names_the_function() -> None:
    def lookup(key: UndefinedType) -> str:  # type: ignore[name-defined]  # noqa: F821
        return key

    with pytest.raises(TypeError, match="function tool lookup: a type hint cannot be resolved"):
        FunctionTool(lookup)
