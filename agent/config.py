"""CLI settings from, in order of precedence: flags, environment, config file, defaults.

    # ~/.config/oss-agent/config.toml  (or $OSS_AGENT_CONFIG)
    model = "http://localhost:8000"      # or a checkpoint folder
    effort = "low"
    tools = ["python", "browser"]
    browser_backend = "exa"

Environment: OSS_AGENT_MODEL, OSS_AGENT_EFFORT, OSS_AGENT_TOOLS (comma separated),
OSS_AGENT_INSTRUCTIONS, OSS_AGENT_MAX_TURNS, OSS_AGENT_MAX_TOKENS_PER_TURN,
OSS_AGENT_MAX_SECONDS, OSS_AGENT_BROWSER_BACKEND.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from tools.base import Tool, validation_problems

ENV_PREFIX = "OSS_AGENT_"
DEFAULT_MODEL = "nano"
NANO_NOTICE = (
    "No model configured: using nano, a small demo model bundled with oss-agent (arithmetic "
    "and unit conversions with python). For real weights: hf download openai/gpt-oss-20b "
    "--include 'original/*' --local-dir gpt-oss-20b, then --model gpt-oss-20b/original "
    "(or OSS_AGENT_MODEL, or model = ... in {path})."
)


class ConfigError(ValueError):
    """Settings that cannot be used; the message says which and where from."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    effort: Literal["low", "medium", "high"] = "medium"
    tools: list[str] = []
    instructions: str | None = None
    max_turns: int = 20
    max_tokens_per_turn: int = 8192
    max_seconds: float | None = None
    browser_backend: str = "exa"

    @field_validator("tools", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("effort", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    def require_model(self) -> str:
        return self.model or DEFAULT_MODEL


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    if "OSS_AGENT_CONFIG" in env:
        return Path(env["OSS_AGENT_CONFIG"]).expanduser()
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "oss-agent" / "config.toml"


def load_settings(
    flags: Mapping[str, Any] | None = None, env: Mapping[str, str] = os.environ
) -> Settings:
    """Merge the sources; flags that are None count as not given."""
    path = config_path(env)
    merged: dict[str, Any] = {}
    if path.exists():
        try:
            merged.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    for field in Settings.model_fields:
        value = env.get(ENV_PREFIX + field.upper())
        if value:
            merged[field] = value
    merged.update({k: v for k, v in (flags or {}).items() if v is not None})
    if not merged.get("model"):
        # The bundled demo model, with the tool it was trained to use.
        merged["model"] = DEFAULT_MODEL
        merged.setdefault("tools", ["python"])
        print(NANO_NOTICE.format(path=path), file=sys.stderr)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid settings ({validation_problems(exc)}); check the flags, "
            f"{ENV_PREFIX}* variables and {path}"
        ) from None


def make_tools(names: list[str], settings: Settings) -> list[Tool]:
    """Builtin tools by name, imported only when asked for (they need Docker or keys)."""
    tools: list[Tool] = []
    for name in names:
        if name == "python":
            try:
                from tools.python import PythonTool
            except ImportError as exc:
                raise ConfigError(f"the python tool is not available: {exc}") from exc
            tools.append(PythonTool())
        elif name == "browser":
            try:
                from tools.browser import BrowserTool, create_backend
            except ImportError as exc:
                raise ConfigError(f"the browser tool is not available: {exc}") from exc
            tools.append(BrowserTool(create_backend(settings.browser_backend)))
        else:
            raise ConfigError(f"unknown tool {name!r}: choose from python, browser")
    return tools
