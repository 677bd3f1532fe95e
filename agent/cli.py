"""The `oss-agent` command. Each concern registers its own sub-command group here, one line
each (`app.add_typer(...)`).

Exit codes, the same for every command:
    0    done (for `run`: the model gave a final answer)
    1    it ran but did not get there (a run stopped by a limit or an error, a failed build)
    2    nothing was done: a flag, setting, path or prerequisite is wrong (the message says which)
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

from agent.config import BUILTIN_TOOLS, default_of
from agent.interrupt import close_loop, run_interruptibly
from agent.server.cli import serve
from evals.cli import eval_app
from runtime.cli import model_app
from tools.python.cli import sandbox_app

EXIT_DONE, EXIT_STOPPED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(
    name="oss-agent",
    help="Run gpt-oss models as tool-using agents.",
    no_args_is_help=True,
    add_completion=False,
    # Plain click help: flags shown as flags, defaults as [default: ...]; sub-apps inherit it.
    rich_markup_mode=None,
)

app.add_typer(model_app, name="model")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(eval_app, name="eval")
app.command()(serve)

if TYPE_CHECKING:
    from agent.config import Settings
    from agent.loop import Agent
    from agent.result import RunResult

ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Checkpoint folder, server URL (http://host:8000) or nano, the bundled demo "
        "model (the default when none is configured; it gets the python tool).",
    ),
]
EffortOption = Annotated[
    str | None,
    typer.Option(help=f"Reasoning effort: low, medium, high.  [default: {default_of('effort')}]"),
]
ToolsOption = Annotated[
    str | None,
    typer.Option(
        help=f"Builtin tools, comma separated: {','.join(BUILTIN_TOOLS)}.  [default: none]"
    ),
]
InstructionsOption = Annotated[str | None, typer.Option(help="Developer instructions.")]
MaxTokensOption = Annotated[
    int | None,
    typer.Option(
        "--max-tokens",
        help="Most tokens sampled in one model turn.  "
        f"[default: {default_of('max_tokens_per_turn')}]",
    ),
]
MaxTurnsOption = Annotated[
    int | None,
    typer.Option(help=f"Most model turns in one run.  [default: {default_of('max_turns')}]"),
]
MaxSecondsOption = Annotated[
    float | None,
    typer.Option(help="Wall-time limit of one run.  [default: none]"),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        help="Folder the python tool's /mnt/data lives in, kept after the run.  "
        "[default: a new folder under ~/.local/share/oss-agent/files]"
    ),
]
BrowserBackendOption = Annotated[
    str | None,
    typer.Option(
        help="The browser's search backend: local, exa, you, tavily, brave, searxng.  "
        f"[default: {default_of('browser_backend')}]"
    ),
]
BrowserSourceOption = Annotated[
    Path | None,
    typer.Option(help="Folder or JSONL file of documents for --browser-backend local."),
]
ResumeOption = Annotated[
    Path | None,
    typer.Option(
        help="Continue a saved session, with its model unless --model (saved back there "
        "unless --save)."
    ),
]


def _print_version(value: bool) -> None:
    if value:
        from agent import __version__

        typer.echo(f"oss-agent {__version__}")
        raise typer.Exit(EXIT_DONE)


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Log what happens behind the scenes (retries, restarts, builds).",
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Log everything, for bug reports.")
    ] = False,
) -> None:
    """Run gpt-oss models as tool-using agents."""
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )


@app.command()
def run(
    task: Annotated[str, typer.Argument(help="What the agent should do.")],
    model: ModelOption = None,
    effort: EffortOption = None,
    tools: ToolsOption = None,
    instructions: InstructionsOption = None,
    max_turns: MaxTurnsOption = None,
    max_tokens: MaxTokensOption = None,
    max_seconds: MaxSecondsOption = None,
    data_dir: DataDirOption = None,
    browser_backend: BrowserBackendOption = None,
    browser_source: BrowserSourceOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON result instead of streaming.")
    ] = False,
    save: Annotated[Path | None, typer.Option(help="Save the session transcript here.")] = None,
    resume: ResumeOption = None,
) -> None:
    """Run one task and stream reasoning, tool calls and the answer.

    Exits 0 with an answer, 1 when the run stopped without one, 2 when nothing ran.
    """
    from agent.console import EventPrinter
    from agent.events import Done

    flags = {
        "model": model,
        "effort": effort,
        "tools": tools,
        "instructions": instructions,
        "max_turns": max_turns,
        "max_tokens_per_turn": max_tokens,
        "max_seconds": max_seconds,
        "data_dir": data_dir,
        "browser_backend": browser_backend,
        "browser_source": browser_source,
    }
    console = Console(stderr=json_output)
    session = _start_session(flags, resume, save or resume)
    printer = EventPrinter(console)

    async def go() -> RunResult:
        async with session.agent:
            async for event in session.agent.stream(task):
                if not json_output:
                    printer(event)
                if isinstance(event, Done):
                    return event.result
        raise AssertionError("unreachable")  # pragma: no cover

    try:  # Ctrl-C: the running tool and the generation stop, then the command exits
        result = run_interruptibly(go())
    except KeyboardInterrupt:
        console.print("interrupted", style="yellow")
        session.report_files(console)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if json_output:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    session.report_files(console)
    if save or resume:
        try:
            session.agent.save(save or resume)
        except OSError as exc:
            _fail(f"could not save the transcript: {exc}", EXIT_STOPPED)
    raise typer.Exit(EXIT_DONE if result.stop_reason == "final" else EXIT_STOPPED)


@app.command()
def chat(
    model: ModelOption = None,
    effort: EffortOption = None,
    tools: ToolsOption = None,
    instructions: InstructionsOption = None,
    max_turns: MaxTurnsOption = None,
    max_tokens: MaxTokensOption = None,
    max_seconds: MaxSecondsOption = None,
    data_dir: DataDirOption = None,
    browser_backend: BrowserBackendOption = None,
    browser_source: BrowserSourceOption = None,
    resume: ResumeOption = None,
) -> None:
    """An interactive session: each message continues the conversation.

    Commands: /effort low|medium|high, /tools [python,browser|none], /save FILE, /reset,
    /help, /exit.
    """
    from agent.console import EventPrinter

    flags = {
        "model": model,
        "effort": effort,
        "tools": tools,
        "instructions": instructions,
        "max_turns": max_turns,
        "max_tokens_per_turn": max_tokens,
        "max_seconds": max_seconds,
        "data_dir": data_dir,
        "browser_backend": browser_backend,
        "browser_source": browser_source,
    }
    session = _start_session(flags, resume, None)
    console = Console()
    printer = EventPrinter(console)

    async def reply(line: str) -> None:
        async for event in session.agent.stream(line):
            printer(event)

    # The prompt is read outside the event loop: Ctrl-C there ends the session; during a
    # reply it cancels the reply (the conversation stays as before it) and prompts again.
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                line = console.input("[bold green]you>[/] ").strip()
            except (EOFError, KeyboardInterrupt):
                console.print("\nbye", style="dim")
                return
            if not line:
                continue
            if line.startswith("/"):
                if loop.run_until_complete(_slash_command(session, line, console)):
                    return
                continue
            try:
                run_interruptibly(reply(line), loop)
            except KeyboardInterrupt:
                console.print("\ncancelled: ask again, or something else", style="yellow")
    finally:
        try:
            loop.run_until_complete(session.agent.aclose())
        finally:
            close_loop(loop)
        session.report_files(console)


CHAT_HELP = (
    "/effort low|medium|high, /tools [python,browser|none], /save FILE, /reset, /help, /exit"
)


async def _slash_command(session: _Session, line: str, console: Console) -> bool:
    """Carry out a chat command; True when the session should end."""
    from agent.config import ConfigError

    agent = session.agent
    command, _, argument = line.partition(" ")
    argument = argument.strip()
    if command in ("/exit", "/quit"):
        return True
    if command == "/effort":
        if argument:
            try:
                agent.reasoning_effort = argument
            except ValueError as exc:
                console.print(str(exc), style="red")
        console.print(f"reasoning effort: {agent.reasoning_effort.value.lower()}")
    elif command == "/tools":
        if argument:
            try:
                await session.set_tools(argument)
            except ConfigError as exc:
                console.print(f"{exc}; tools unchanged", style="red", markup=False, soft_wrap=True)
        names = [t.name for t in agent.tools]
        console.print("tools: " + (", ".join(names) or "none"), markup=False)
    elif command == "/save":
        if not argument:
            console.print("usage: /save FILE", style="red")
        else:
            try:
                console.print(f"saved to {agent.save(argument)}", markup=False)
            except OSError as exc:
                console.print(f"could not save: {exc}", style="red", markup=False)
    elif command == "/reset":
        agent.reset()
        console.print("conversation cleared")
    else:
        console.print(f"commands: {CHAT_HELP}", markup=False)
    return False


@dataclass
class _Session:
    """The agent the CLI built, its settings, and where the python tool keeps its files."""

    settings: Settings
    agent: Agent = field(init=False)
    # Removed at the end when it is the default folder and stayed empty.
    data_dir_is_default: bool = False

    def ensure_data_dir(self) -> None:
        """Give the python tool its folder: the one configured, else a new default one."""
        from agent.config import default_data_dir

        if self.settings.data_dir is None:
            self.settings.data_dir = default_data_dir()
            self.data_dir_is_default = True

    def report_files(self, console: Console) -> None:
        """Say where the python tool's files are, when it saved any."""
        folder = self.settings.data_dir
        if folder is None or not folder.is_dir() or "python" not in self.tool_names():
            return
        if any(folder.iterdir()):
            console.print(f"files saved by the python tool: {folder}", markup=False, soft_wrap=True)
        elif self.data_dir_is_default:
            shutil.rmtree(folder, ignore_errors=True)

    def tool_names(self) -> list[str]:
        return [t.name for t in self.agent.tools]

    async def set_tools(self, argument: str) -> None:
        """Replace the builtin tools (`python,browser` or `none`); a tool kept keeps its state."""
        from agent.config import make_tools, tool_names

        wanted = tool_names(argument)
        current = {t.name: t for t in self.agent.tools}
        new = [name for name in wanted if name not in current]
        if "python" in new:
            self.ensure_data_dir()
        added = iter(make_tools(new, self.settings))
        self.agent.tools = [current.get(name) or next(added) for name in wanted]
        for name, tool in current.items():
            if name not in wanted:
                await tool.aclose()


def _start_session(flags: dict[str, Any], resume: Path | None, save: Path | None) -> _Session:
    """The agent the flags, environment, config file and transcript describe. Everything is
    checked before the model loads; a problem exits with code 2 and says what to fix."""
    from agent.config import DEMO_NOTICE, ConfigError, load_settings, make_tools
    from agent.transcript import TranscriptError, check_writable, read_transcript

    try:
        given = {k: v for k, v in flags.items() if v is not None}
        if resume is not None:
            given.setdefault("model", read_transcript(resume).get("model"))
        settings = load_settings(given)
        model = settings.require_model()
        if not settings.model:
            Console(stderr=True, soft_wrap=True).print(
                DEMO_NOTICE, style="dim", markup=False, highlight=False
            )
        if save is not None:
            check_writable(save)
        session = _Session(settings)
        if "python" in settings.tools:
            session.ensure_data_dir()
        tools = make_tools(settings.tools, settings)
        options: dict[str, Any] = {
            "tools": tools,
            "max_turns": settings.max_turns,
            "max_tokens_per_turn": settings.max_tokens_per_turn,
            "max_seconds": settings.max_seconds,
        }
        # Resuming keeps the transcript's effort and instructions unless a flag changes them.
        if resume is None or "effort" in given:
            options["reasoning_effort"] = settings.effort
        if settings.instructions is not None and (resume is None or "instructions" in given):
            options["instructions"] = settings.instructions
        session.agent = _load_agent(model, resume, options)
        return session
    except (ConfigError, TranscriptError, ValueError) as exc:
        _fail(str(exc), EXIT_USAGE)
    except (OSError, RuntimeError) as exc:
        _fail(f"could not load the model: {exc}", EXIT_USAGE)


def _load_agent(model: str, resume: Path | None, options: dict[str, Any]) -> Agent:
    """Build the agent; for a local checkpoint (seconds to minutes) say on stderr what is
    loading and how long it took. A server URL connects lazily."""
    from agent.loop import Agent

    local = not model.startswith(("http://", "https://")) and "+http" not in model
    err = Console(stderr=True)
    started = time.monotonic()
    if local:
        err.print(f"loading {model} …", style="dim", markup=False, highlight=False)
    agent = Agent.resume(resume, model, **options) if resume else Agent(model, **options)
    if local:
        err.print(f"loaded in {time.monotonic() - started:.1f} s", style="dim", highlight=False)
    return agent


def _fail(message: str, code: int) -> NoReturn:
    Console(stderr=True, soft_wrap=True).print(message, style="red", markup=False)
    raise typer.Exit(code)


def main() -> None:
    app()
