"""Sessions on disk: the harmony conversation (openai-harmony's JSON form) plus what the
agent needs to continue it and what each run cost.

    {"format": "oss-agent-transcript", "version": 1, "model": ..., "reasoning_effort": ...,
     "instructions": ..., "conversation_start_date": ..., "conversation": {...},
     "runs": [{...RunResult fields..., "message_count": n}, ...]}

`message_count`: how many messages after the system and developer ones the session had
when that run ended.

`conversation` is loadable on its own with `Conversation.from_json`.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.harmony import Conversation, Role
from agent.result import RunResult

if TYPE_CHECKING:
    from agent.loop import Agent
    from runtime.engine import Engine
    from tools.base import Tool

FORMAT = "oss-agent-transcript"
VERSION = 1


class TranscriptError(ValueError):
    """A file that is not an oss-agent transcript this version can read."""


def save_transcript(agent: Agent, path: str | Path) -> Path:
    """Write `agent`'s session to `path` (JSON); returns the path."""
    # Each run's conversation is the session up to its end; storing where that end is
    # lets `load_transcript` give every run its conversation back.
    header = len(agent.header_messages())
    runs = [
        {**r.model_dump(mode="json"), "message_count": len(r.conversation.messages) - header}
        for r in agent.results
    ]
    data = {
        "format": FORMAT,
        "version": VERSION,
        "model": _model_reference(agent.model_name),
        "reasoning_effort": agent.reasoning_effort.value.lower(),
        "instructions": agent.instructions,
        "conversation_start_date": agent.conversation_start_date,
        "conversation": agent.conversation.to_dict(),
        "runs": runs,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return path


def check_writable(path: str | Path) -> Path:
    """Raise TranscriptError unless a transcript can be written at `path`, by writing a
    scratch file beside it: run before a run starts, so its result is never lost to a
    save that fails afterwards."""
    path = Path(path)
    if path.is_dir():
        raise TranscriptError(f"cannot save the transcript to {path}: it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}."):
            pass
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(f"{path} is read-only")
    except OSError as exc:
        raise TranscriptError(f"cannot save the transcript to {path}: {exc}") from None
    return path


def _write_atomically(path: Path, text: str) -> None:
    """Write to a scratch file in the same folder, then rename it over `path`: a crash or a
    full disk leaves the previous transcript whole, never half of the new one. A new file is
    readable by its owner only (conversations are private); a replaced one keeps its mode."""
    fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        if path.exists():
            os.chmod(scratch, stat.S_IMODE(path.stat().st_mode))
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def _model_reference(model: str) -> str:
    """A local checkpoint as an absolute path, so `--resume` finds it from any folder."""
    if model.startswith(("http://", "https://")) or not Path(model).exists():
        return model
    return str(Path(model).resolve())


def read_transcript(path: str | Path) -> dict[str, Any]:
    """The transcript's JSON, checked for format and version."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TranscriptError(f"cannot read transcript {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TranscriptError(f"{path} is not an oss-agent transcript (no format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise TranscriptError(
            f"{path} is transcript version {data.get('version')}; this oss-agent reads "
            f"version {VERSION}"
        )
    return data


def load_transcript(
    path: str | Path, model: Engine | str, tools: Sequence[Tool] = (), **kwargs: Any
) -> Agent:
    """An agent continuing the saved session. Settings come from the file unless given in
    `kwargs`; the system and developer messages are rebuilt from the current tools."""
    from agent.loop import Agent

    data = read_transcript(path)
    settings = {
        "instructions": data.get("instructions"),
        "reasoning_effort": data.get("reasoning_effort", "medium"),
        "conversation_start_date": data.get("conversation_start_date"),
    }
    agent = Agent(model=model, tools=tools, **{**settings, **kwargs})
    conversation = Conversation.from_json(json.dumps(data["conversation"]))
    body = [m for m in conversation.messages if m.author.role not in (Role.SYSTEM, Role.DEVELOPER)]
    agent.messages.extend(body)
    header = agent.header_messages()
    for run in data.get("runs", []):
        messages = header + body[: run.pop("message_count")]
        agent.results.append(
            RunResult.model_validate({**run, "conversation": Conversation(messages=messages)})
        )
    return agent
