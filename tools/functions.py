"""Typed Python functions as `functions.NAME` tools.

The function's signature is the contract: pydantic builds the JSON Schema the model reads
(in the developer message) from the type hints, and validates the model's JSON arguments
against the same hints before the function runs. Anything that goes wrong (bad JSON, a
validation error, an exception, a timeout) raises `ToolError`, whose text the agent loop
sends back to the model so it can correct itself.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import re
from collections.abc import Callable
from typing import Any, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, Field, PydanticUserError, TypeAdapter, create_model
from pydantic_core import to_jsonable_python

from agent.harmony import Message, ToolDescription, ToolNamespaceConfig
from tools.base import Tool, ToolError, tool_message, validate_arguments

NAMESPACE = "functions"
_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SECTION = re.compile(r"^\s*(Returns|Raises|Yields|Examples?|Notes?):\s*$")


class FunctionTool(Tool):
    """One Python function (sync or async) exposed to the model as `functions.NAME`.

    Sync functions run in a worker thread so a slow one does not block the loop; on timeout
    the model is told at once, though a sync function's thread runs on until it returns.
    """

    in_system_message = False

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = 60.0,
    ) -> None:
        self.fn = fn
        self.function_name = name or fn.__name__
        self.name = f"{NAMESPACE}.{self.function_name}"
        self.timeout = timeout
        summary, arg_docs = _parse_docstring(inspect.getdoc(fn) or "")
        self.description = description or summary or self.function_name
        self.arguments_model = _arguments_model(fn, self.function_name, arg_docs)
        schema = _schema_for_prompt(self.arguments_model.model_json_schema())
        self.parameters = schema if schema.get("properties") else None
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calling the tool calls the function, so decorated functions stay usable."""
        return self.fn(*args, **kwargs)

    def tool_description(self) -> ToolDescription:
        return ToolDescription.new(self.function_name, self.description, self.parameters)

    def namespace(self) -> ToolNamespaceConfig:
        return ToolNamespaceConfig(name=NAMESPACE, tools=[self.tool_description()])

    def handles(self, recipient: str) -> bool:
        return recipient == self.name

    async def call(self, message: Message) -> list[Message]:
        kwargs = self.validate(message.text)
        return [tool_message(message, _result_text(await self.invoke(kwargs)))]

    def validate(self, arguments: str) -> dict[str, Any]:
        """The model's JSON arguments checked against the signature, as keyword arguments."""
        parsed = validate_arguments(
            arguments,
            self.arguments_model,
            self.name,
            "Send a JSON object matching the tool's parameters.",
        )
        return {field: getattr(parsed, field) for field in type(parsed).model_fields}

    async def invoke(self, kwargs: dict[str, Any]) -> Any:
        """Run the function with validated arguments, within the timeout."""
        if inspect.iscoroutinefunction(self.fn):
            work = self.fn(**kwargs)
        else:
            work = asyncio.to_thread(self.fn, **kwargs)
        try:
            return await asyncio.wait_for(work, self.timeout)
        except TimeoutError:
            raise ToolError(
                f"{self.name} timed out after {self.timeout:g} s. Try smaller inputs or "
                "another approach."
            ) from None
        except ToolError:
            raise
        except Exception as exc:
            raise ToolError(f"{self.name} failed: {type(exc).__name__}: {exc}") from exc


@overload
def function_tool(fn: Callable[..., Any], /) -> FunctionTool: ...
@overload
def function_tool(
    *, name: str | None = None, description: str | None = None, timeout: float | None = 60.0
) -> Callable[[Callable[..., Any]], FunctionTool]: ...
def function_tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = 60.0,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Decorator: `@function_tool` or `@function_tool(timeout=5)` makes a `FunctionTool`."""

    def wrap(f: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(f, name=name, description=description, timeout=timeout)

    return wrap(fn) if fn is not None else wrap


def to_tool(tool: Tool | Callable[..., Any]) -> Tool:
    """A tool as given, or a plain function made into a `FunctionTool`; anything else, or a
    function whose parameters cannot be described to the model, raises TypeError naming it."""
    if isinstance(tool, Tool):
        return tool
    if callable(tool):
        return FunctionTool(tool)
    raise TypeError(
        f"{tool!r} is not a tool: pass Tool objects (PythonTool(), BrowserTool(...)) or "
        "functions with type hints"
    )


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (text before `Args:`) and Google-style per-argument descriptions."""
    summary: list[str] = []
    args: dict[str, str] = {}
    section = "summary"
    current: str | None = None
    arg_indent: int | None = None
    for line in doc.splitlines():
        indent = len(line) - len(line.lstrip())
        if _ARGS_HEADER.match(line):
            section = "args"
        elif _SECTION.match(line):
            section = "other"
        elif section == "summary":
            summary.append(line)
        elif section == "args" and line.strip():
            arg_indent = indent if arg_indent is None else arg_indent
            found = _ARG_LINE.match(line)
            if found and indent == arg_indent:
                current = found.group(1).lstrip("*")
                args[current] = found.group(2).strip()
            elif current is not None:
                args[current] = f"{args[current]} {line.strip()}".strip()
    return "\n".join(summary).strip(), args


def _arguments_model(
    fn: Callable[..., Any], name: str, arg_docs: dict[str, str]
) -> type[BaseModel]:
    try:
        hints = get_type_hints(fn, include_extras=True)
    except NameError as exc:
        raise TypeError(
            f"function tool {name}: a type hint cannot be resolved ({exc}); import the "
            "type where the function is defined"
        ) from None
    try:
        parameters = inspect.signature(fn).parameters.values()
    except ValueError:
        raise TypeError(
            f"function tool {name}: its signature cannot be read (a builtin?); wrap it in a "
            "function whose parameters have type hints"
        ) from None
    fields: dict[str, Any] = {}
    for param in parameters:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            stars = "*" if param.kind is param.VAR_POSITIONAL else "**"
            raise TypeError(
                f"function tool {name}: parameter {stars}{param.name} cannot be described to "
                "the model; declare each parameter with a type hint"
            )
        if param.name not in hints:
            raise TypeError(
                f"function tool {name}: parameter {param.name!r} has no type hint; the model "
                "needs one to know what to send"
            )
        try:
            TypeAdapter(hints[param.name]).json_schema()
        except PydanticUserError:
            raise TypeError(
                f"function tool {name}: parameter {param.name!r} has type "
                f"{hints[param.name]!r}, which has no JSON form the model could send; use "
                "str, int, float, bool, lists, dicts, Literal, Enum or a pydantic model"
            ) from None
        default = ... if param.default is param.empty else param.default
        doc = arg_docs.get(param.name)
        fields[param.name] = (
            hints[param.name],
            Field(default, description=doc) if doc else default,
        )
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


def _schema_for_prompt(schema: dict[str, Any]) -> dict[str, Any]:
    """pydantic's JSON Schema in the subset the harmony renderer prints: `$ref`s inlined,
    titles dropped, `Optional[X]` as `nullable`, other unions as `oneOf`."""
    defs = schema.get("$defs", {})

    def simplify(node: dict[str, Any]) -> dict[str, Any]:
        node = {k: v for k, v in node.items() if k not in ("title", "$defs")}
        if "$ref" in node:
            target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
            node = {**{k: v for k, v in target.items() if k != "title"}, **node}
        if isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
            node = {**node.pop("allOf")[0], **node}
        variants = node.pop("anyOf", None)
        if variants is not None:
            others = [v for v in variants if v != {"type": "null"}]
            if len(others) == 1:
                node = {**others[0], **node}
            else:
                node["oneOf"] = others
            if len(others) < len(variants):
                node["nullable"] = True
            return simplify(node)
        if isinstance(node.get("properties"), dict):
            node["properties"] = {k: simplify(v) for k, v in node["properties"].items()}
        if isinstance(node.get("items"), dict):
            node["items"] = simplify(node["items"])
        if isinstance(node.get("oneOf"), list):
            node["oneOf"] = [simplify(v) for v in node["oneOf"]]
        return node

    return simplify(schema)


def _result_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(to_jsonable_python(value), ensure_ascii=False)
