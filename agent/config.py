"""CLI settings from, in order of precedence: flags, environment, config file, defaults.

    # ~/.config/oss-agent/config.toml  (or $OSS_AGENT_CONFIG)
    model = "http://localhost:8000"      # or a checkpoint folder
    effort = "low"
    tools = ["python", "browser"]
    data_dir = "~/agent-files"           # where the python tool's /mnt/data lives
    browser_backend = "local"            # or exa, you, tavily, brave, searxng
    browser_source = "~/docs"            # the local backend's folder or JSONL file

Environment: OSS_AGENT_ and the field name in capitals, e.g. OSS_AGENT_MODEL,
OSS_AGENT_TOOLS (comma separated), OSS_AGENT_MAX_TOKENS_PER_TURN, OSS_AGENT_DATA_DIR,
OSS_AGENT_BROWSER_BACKEND, OSS_AGENT_BROWSER_SOURCE.

Everything here is checked before any work starts (no model loaded, no container started),
so a mistake costs the user seconds, not a model load.
"""

from __future__ import annotations

import datetime
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tools.base import Tool, validation_problems

ENV_PREFIX = "OSS_AGENT_"
BUILTIN_TOOLS = ("python", "browser")
HF_DOWNLOAD = 'hf download {repo} --include "original/*" --local-dir {folder}/'
DEMO_MODEL = "nano"
DEMO_NOTICE = (
    "no model configured: using nano, the small demo model bundled with oss-agent (it only "
    "does arithmetic, unit conversions and small word problems, with python); for gpt-oss "
    f"itself: {HF_DOWNLOAD.format(repo='openai/gpt-oss-20b', folder='gpt-oss-20b')} "
    "and --model gpt-oss-20b/original, or --model http://localhost:8000 for a server"
)
# `host:port` or `localhost`, with an optional path: a server address missing its scheme.
_HOST_PORT = re.compile(r"^(localhost|[\w.-]+:\d+)(/.*)?$")
# `owner/name`: how Hugging Face names a model repository.
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class ConfigError(ValueError):
    """Settings that cannot be used; the message says which and where from."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    effort: Literal["low", "medium", "high"] = "medium"
    tools: list[str] = []
    instructions: str | None = None
    max_turns: int = Field(20, gt=0)
    max_tokens_per_turn: int = Field(8192, gt=0)
    max_seconds: float | None = Field(None, gt=0)
    data_dir: Path | None = None
    browser_backend: str = "exa"
    browser_source: Path | None = None

    @field_validator("tools", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return tool_names(value) if isinstance(value, str) else value

    @field_validator("tools")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        return tool_names(",".join(names))

    @field_validator("effort", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("data_dir", "browser_source")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _demo_tools(self) -> Settings:
        """Without a model the demo model runs, with the tool it was trained to use unless
        tools were chosen."""
        if not self.model and "tools" not in self.model_fields_set:
            self.tools = ["python"]
        return self

    def require_model(self) -> str:
        """The model, checked to name a server URL or an existing folder; the bundled demo
        model when none is configured (`DEMO_NOTICE` says so)."""
        if not self.model:
            return DEMO_MODEL
        return check_model(self.model)


def tool_names(value: str) -> list[str]:
    """`python,browser` as a list; `none` or nothing as none; ConfigError for unknown names."""
    names = [name.strip() for name in value.split(",") if name.strip() not in ("", "none")]
    for name in names:
        if name not in BUILTIN_TOOLS:
            raise ConfigError(f"unknown tool {name!r}: choose from {', '.join(BUILTIN_TOOLS)}")
    return names


def default_of(field: str) -> Any:
    """A setting's default, for help texts (one source of truth: `Settings`)."""
    return Settings.model_fields[field].default


def check_model(model: str) -> str:
    """`model` if it is a server URL or an existing path; otherwise a ConfigError with the
    likely fix (a missing `http://`, a Hugging Face id that must be downloaded first)."""
    if model.startswith(("http://", "https://")) or "+http" in model.split("://")[0]:
        return model
    if model == DEMO_MODEL:  # the small model bundled with the package
        return model
    if Path(model).expanduser().exists():
        return str(Path(model).expanduser())
    if _HOST_PORT.match(model):
        raise ConfigError(
            f"model {model!r} looks like a server address without its scheme; "
            f"write it as a URL: --model http://{model}"
        )
    owner, _, name = model.partition("/")
    if _REPO_ID.match(model) and name != "original" and not Path(owner).exists():
        raise ConfigError(
            f"model {model!r} is not a folder here. If it is a Hugging Face model id, "
            f"oss-agent does not download weights; fetch them once with\n\n"
            f"    {HF_DOWNLOAD.format(repo=model, folder=name)}\n\n"
            f"and pass --model {name}/original"
        )
    download = ""
    if "gpt-oss" in model.lower():
        folder = Path(model).parts[0]
        repo = "openai/gpt-oss-120b" if "120b" in model else "openai/gpt-oss-20b"
        download = (
            f" To download the weights: {HF_DOWNLOAD.format(repo=repo, folder=folder)}"
            f" (then --model {folder}/original)"
        )
    raise ConfigError(
        f"model {model!r}: no such folder. Give a checkpoint folder (with config.json) or a "
        f"server URL such as http://localhost:8000.{download}"
    )


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    if "OSS_AGENT_CONFIG" in env:
        return Path(env["OSS_AGENT_CONFIG"]).expanduser()
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "oss-agent" / "config.toml"


def default_data_dir(env: Mapping[str, str] = os.environ) -> Path:
    """A new folder per session under the user's data directory (XDG), named by its start
    time: outside the current folder (the sandbox never sees the user's own files) and in the
    place the XDG convention reserves for files an application keeps for its user."""
    base = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return base / "oss-agent" / "files" / f"{stamp}_{os.getpid()}"


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
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid settings ({validation_problems(exc)}); check the flags, "
            f"{ENV_PREFIX}* variables and {path}"
        ) from None


def make_tools(names: list[str], settings: Settings) -> list[Tool]:
    """Builtin tools by name, imported only when asked for. What they need from outside (a
    Docker engine, an API key, a document folder) is checked here, before any model loads."""
    tools: list[Tool] = []
    for name in names:
        if name == "python":
            tools.append(_python_tool(settings))
        elif name == "browser":
            tools.append(_browser_tool(settings))
        else:
            raise ConfigError(f"unknown tool {name!r}: choose from {', '.join(BUILTIN_TOOLS)}")
    return tools


def _python_tool(settings: Settings) -> Tool:
    try:
        from tools.python import PythonTool, SandboxError
        from tools.python.image import connect
    except ImportError as exc:
        raise ConfigError(f"the python tool is not available: {exc}") from exc
    try:
        connect().close()
    except SandboxError as exc:
        raise ConfigError(f"--tools python needs a Docker engine. {exc}") from None
    return PythonTool(data_dir=settings.data_dir)


def _browser_tool(settings: Settings) -> Tool:
    try:
        from tools.browser import BackendConfigError, BrowserTool, LocalIndex, create_backend
        from tools.browser.backends import WEB_BACKENDS
    except ImportError as exc:
        raise ConfigError(f"the browser tool is not available: {exc}") from exc
    name = settings.browser_backend
    if name == LocalIndex.name:
        source = settings.browser_source
        if source is None:
            raise ConfigError(
                "the browser's local search backend needs documents to search: pass "
                "--browser-source FOLDER_OR_JSONL, set OSS_AGENT_BROWSER_SOURCE, or put "
                f'browser_source = "..." in {config_path()}'
            )
        try:
            # Offline: results open from the index; the tool never reaches the internet.
            return BrowserTool(LocalIndex.build(source), web=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot index --browser-source {source}: {exc}") from None
    backend = WEB_BACKENDS.get(name)
    try:
        return BrowserTool(create_backend(name))
    except BackendConfigError as exc:
        if backend is None:
            raise ConfigError(f"{exc} Set it with --browser-backend.") from None
        needs = backend.key_env or backend.base_url_env
        what = "an API key" if backend.key_env else "its server's URL"
        raise ConfigError(
            f"the browser's {name} search backend needs {what}: set the environment "
            f"variable {needs}. Or choose another backend with --browser-backend "
            f"(or OSS_AGENT_BROWSER_BACKEND): {', '.join([LocalIndex.name, *WEB_BACKENDS])}; "
            "`local` searches your own documents offline (with --browser-source FOLDER)."
        ) from None
