"""The text of system and developer messages, and of tool namespaces.

gpt-oss was trained on one exact text layout for these sections; every rule here (blank
lines, comment placement, how JSON Schema becomes TypeScript-like types) is what
openai-harmony produces, checked token for token by the differential tests.
"""

from __future__ import annotations

import json
from typing import Any

from agent.harmony.chat import DeveloperContent, SystemContent, ToolNamespaceConfig

_EFFORT_TEXT = {"Low": "low", "Medium": "medium", "High": "high"}
# Variant lines of a oneOf hang three spaces deeper; nested objects four.
_VARIANT_INDENT = "   "
_OBJECT_INDENT = "    "


def lines(text: str) -> list[str]:
    """Split like Rust's `str::lines`: on newlines, dropping `\\r` and a final empty line."""
    parts = text.split("\n")
    if parts[-1] == "":
        parts.pop()
    return [p.removesuffix("\r") for p in parts]


def json_text(value: Any) -> str:
    """A JSON value as serde_json prints it: compact, non-ASCII kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _is_enum(schema: dict) -> bool:
    values = schema.get("enum")
    return isinstance(values, list) and len(values) > 0


def _default_comment(schema: dict, enum_strings_bare: bool) -> str:
    """`default: ...` for a schema's default value; strings quoted raw, not JSON-escaped."""
    default = schema["default"]
    if isinstance(default, str):
        if not _is_enum(schema):
            return f'default: "{default}"'
        if enum_strings_bare:
            return f"default: {default}"
    return f"default: {json_text(default)}"


def _with_null(type_text: str, schema: dict) -> str:
    if schema.get("nullable") is True and "null" not in type_text:
        return f"{type_text} | null"
    return type_text


def schema_to_typescript(schema: Any, indent: str = "") -> str:
    """Render a JSON Schema as the TypeScript-like type the model reads in tool definitions."""
    if not isinstance(schema, dict):
        return "any"
    one_of = schema.get("oneOf")
    if isinstance(one_of, list):
        return _top_level_one_of(one_of, indent)
    kind = schema.get("type")
    if isinstance(kind, list):
        names = ["number" if k == "integer" else k for k in kind if isinstance(k, str)]
        if names:
            return " | ".join(names)
    if not isinstance(kind, str):
        return "any"
    if kind == "object":
        return _object(schema, indent)
    if kind == "string":
        values = schema.get("enum")
        if isinstance(values, list):
            quoted = [f'"{v}"' for v in values if isinstance(v, str)]
            if quoted:
                return " | ".join(quoted)
        return "string"
    if kind in ("number", "integer"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "array":
        if "items" in schema:
            return f"{schema_to_typescript(schema['items'], indent)}[]"
        return "Array<any>"
    return "any"


def _top_level_one_of(variants: list, indent: str) -> str:
    out = []
    for variant in variants:
        text = _with_null(
            schema_to_typescript(variant, indent + _VARIANT_INDENT), _as_dict(variant)
        )
        comments = []
        if isinstance(variant, dict):
            if isinstance(variant.get("description"), str):
                comments.append(variant["description"])
            if "default" in variant:
                comments.append(_default_comment(variant, enum_strings_bare=False))
        tail = f" // {' '.join(comments)}" if comments else ""
        out.append(f"\n{indent} | {text}{tail}")
    return "".join(out)


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _object(schema: dict, indent: str) -> str:
    out = []
    if isinstance(schema.get("description"), str):
        out.append(f"{indent}// {schema['description']}\n")
    out.append("{\n")
    properties = schema.get("properties")
    if isinstance(properties, dict):
        required = schema.get("required")
        required = (
            {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()
        )
        for key, prop in properties.items():
            out.append(_property(key, _as_dict(prop), key in required, indent))
    out.append(f"{indent}}}")
    return "".join(out)


def _property(key: str, prop: dict, required: bool, indent: str) -> str:
    optional = "" if required else "?"
    out = []
    if isinstance(prop.get("title"), str):
        out.append(f"{indent}// {prop['title']}\n{indent}//\n")
    if "oneOf" not in prop and isinstance(prop.get("description"), str):
        out.append(f"{indent}// {prop['description']}\n")
    examples = prop.get("examples")
    if isinstance(examples, list) and examples:
        out.append(f"{indent}// Examples:\n")
        out.extend(f'{indent}// - "{ex}"\n' for ex in examples if isinstance(ex, str))
    one_of = prop.get("oneOf")
    if isinstance(one_of, list):
        out.append(_property_one_of(key, prop, one_of, optional, indent))
        return "".join(out)
    type_text = _with_null(schema_to_typescript(prop, indent + _OBJECT_INDENT), prop)
    out.append(f"{indent}{key}{optional}: {type_text},")
    if "oneOf" not in prop and "default" in prop:
        out.append(f" // {_default_comment(prop, enum_strings_bare=True)}")
    out.append("\n")
    return "".join(out)


def _property_one_of(key: str, prop: dict, variants: list, optional: str, indent: str) -> str:
    out = []
    description = prop.get("description") if isinstance(prop.get("description"), str) else None
    first_description = _as_dict(variants[0]).get("description") if variants else None
    described_above = description is not None and description != first_description
    if described_above:
        out.append(f"{indent}// {description}\n")
    if "default" in prop:
        out.append(f"{indent}// {_default_comment(prop, enum_strings_bare=True)}\n")
    out.append(f"{indent}{key}{optional}:\n")
    for i, variant in enumerate(variants):
        variant = _as_dict(variant)
        text = _with_null(schema_to_typescript(variant, indent + _VARIANT_INDENT), variant)
        comments = []
        variant_description = variant.get("description")
        if (
            not (i == 0 and described_above)
            and isinstance(variant_description, str)
            and variant_description != description
        ):
            comments.append(variant_description)
        if "default" in variant:
            comments.append(_default_comment(variant, enum_strings_bare=True))
        tail = f" // {' '.join(comments)}" if comments else ""
        out.append(f"{indent} | {text}{tail}\n")
    out.append(f"{indent},\n")
    return "".join(out)


def namespace_section(ns: ToolNamespaceConfig) -> str:
    """`## name`, its description, and a `namespace name { ... }` block of typed tools."""
    parts = [f"## {ns.name}\n"]
    if ns.description is not None:
        prefix = "// " if ns.tools else ""
        parts.extend(prefix + line for line in lines(ns.description))
    if ns.tools:
        parts.append(f"namespace {ns.name} {{\n")
        for tool in ns.tools:
            parts.extend(f"// {line}" for line in lines(tool.description))
            if tool.parameters is not None:
                params = schema_to_typescript(tool.parameters)
                parts.append(f"type {tool.name} = (_: {params}) => any;\n")
            else:
                parts.append(f"type {tool.name} = () => any;\n")
        parts.append(f"}} // namespace {ns.name}")
    return "\n".join(parts)


def tools_section(tools: dict[str, ToolNamespaceConfig]) -> str:
    """`# Tools` and every namespace, ordered by name as openai-harmony's BTreeMap does."""
    return "\n\n".join(["# Tools", *(namespace_section(tools[name]) for name in sorted(tools))])


def system_text(system: SystemContent, has_function_tools: bool) -> str:
    sections = []
    top = []
    if system.model_identity is not None:
        top.append(system.model_identity)
    if system.knowledge_cutoff is not None:
        top.append(f"Knowledge cutoff: {system.knowledge_cutoff}")
    if system.conversation_start_date is not None:
        top.append(f"Current date: {system.conversation_start_date}")
    if top:
        sections.append("\n".join(top))
    if system.reasoning_effort is not None:
        sections.append(f"Reasoning: {_EFFORT_TEXT[system.reasoning_effort.value]}")
    if system.tools:
        sections.append(tools_section(system.tools))
    channels = system.channel_config
    if channels is not None and channels.valid_channels:
        header = f"# Valid channels: {', '.join(channels.valid_channels)}."
        if channels.channel_required:
            header += " Channel must be included for every message."
        if has_function_tools:
            header += "\nCalls to these tools must go to the commentary channel: 'functions'."
        sections.append(header)
    return "\n\n".join(sections)


def developer_text(developer: DeveloperContent) -> str:
    sections = []
    if developer.instructions is not None:
        sections += ["# Instructions", developer.instructions]
    if developer.tools:
        sections.append(tools_section(developer.tools))
    return "\n\n".join(sections)
