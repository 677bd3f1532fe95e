"""The `oss-agent` command. Each concern registers its own sub-command group here."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from agent.server.cli import serve
from runtime.cli import model_app
from tools.python.cli import sandbox_app

app = typer.Typer(
    name="oss-agent",
    help="Run gpt-oss models as tool-using agents.",
    no_args_is_help=True,
    add_completion=False,
)

app.add_typer(model_app, name="model")
app.add_typer(sandbox_app, name="sandbox")
app.command()(serve)

if TYPE_CHECKING:
    from agent.loop import Agent
    from agent.result import RunResult

ModelOption = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Checkpoint folder or server URL (http://host:8000)."),
]
EffortOption = Annotated[str | None, typer.Option(help="Reasoning effort: low, medium, high.")]
ToolsOption = Annotated[
    str | None, typer.Option(help="Builtin tools, comma separated: python,browser.")
]
InstructionsOption = Annotated[str | None, typer.Option(help="Developer instructions.")]
MaxTokensOption = Annotated[
    int | None, typer.Option("--max-tokens", help="Most tokens sampled in one model turn.")
]


@app.command()
def version() -> None:
    """Print the installed oss-agent version."""
    from agent import __version__

    typer.echo(__version__)


@app.command()
def run(
    task: Annotated[str, typer.Argument(help="What the agent should do.")],
    model: ModelOption = None,
    effort: EffortOption = None,
    tools: ToolsOption = None,
    instructions: InstructionsOption = None,
    max_turns: Annotated[int | None, typer.Option(help="Most model turns.")] = None,
    max_tokens: MaxTokensOption = None,
    max_seconds: Annotated[float | None, typer.Option(help="Wall-time limit.")] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON result instead of streaming.")
    ] = False,
    save: Annotated[Path | None, typer.Option(help="Save the session transcript here.")] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue a saved session (saved back there unless --save)."),
    ] = None,
) -> None:
    """Run one task and stream reasoning, tool calls and the answer."""
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
    }
    agent = _make_agent(flags, resume)
    console = Console(stderr=json_output)
    printer = EventPrinter(console)

    async def go() -> RunResult:
        async with agent:
            async for event in agent.stream(task):
                if not json_output:
                    printer(event)
                if isinstance(event, Done):
                    return event.result
        raise AssertionError("unreachable")  # pragma: no cover

    try:
        result = asyncio.run(go())
    except KeyboardInterrupt:
        console.print("interrupted", style="yellow")
        raise typer.Exit(130) from None
    if save or resume:
        agent.save(save or resume)
    if json_output:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    raise typer.Exit(0 if result.stop_reason == "final" else 1)


@app.command()
def chat(
    model: ModelOption = None,
    effort: EffortOption = None,
    tools: ToolsOption = None,
    instructions: InstructionsOption = None,
    max_tokens: MaxTokensOption = None,
    resume: Annotated[Path | None, typer.Option(help="Continue a saved session.")] = None,
) -> None:
    """An interactive session: each message continues the conversation.

    Commands: /effort low|medium|high, /tools, /save FILE, /reset, /help, /exit.
    """
    from agent.console import EventPrinter

    flags = {
        "model": model,
        "effort": effort,
        "tools": tools,
        "instructions": instructions,
        "max_tokens_per_turn": max_tokens,
    }
    agent = _make_agent(flags, resume)
    console = Console()
    printer = EventPrinter(console)

    async def session() -> None:
        async with agent:
            while True:
                try:
                    line = await asyncio.to_thread(console.input, "[bold green]you>[/] ")
                except EOFError:
                    return
                line = line.strip()
                if not line:
                    continue
                if line.startswith("/"):
                    if _slash_command(agent, line, console):
                        return
                    continue
                async for event in agent.stream(line):
                    printer(event)

    try:
        asyncio.run(session())
    except KeyboardInterrupt:
        console.print("\nbye", style="dim")


CHAT_HELP = "/effort low|medium|high, /tools, /save FILE, /reset, /help, /exit"


def _slash_command(agent: Agent, line: str, console: Console) -> bool:
    """Carry out a chat command; True when the session should end."""
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
        names = [t.name for t in agent.tools]
        console.print("tools: " + (", ".join(names) or "none"), markup=False)
    elif command == "/save":
        if not argument:
            console.print("usage: /save FILE", style="red")
        else:
            console.print(f"saved to {agent.save(argument)}", markup=False)
    elif command == "/reset":
        agent.reset()
        console.print("conversation cleared")
    else:
        console.print(f"commands: {CHAT_HELP}", markup=False)
    return False


def _make_agent(flags: dict[str, Any], resume: Path | None) -> Agent:
    """The agent the flags, environment and config file describe; exits with a message
    saying what to fix when they are not usable."""
    from agent.config import ConfigError, load_settings, make_tools
    from agent.loop import Agent
    from agent.transcript import TranscriptError

    try:
        settings = load_settings(flags)
        options = {
            "tools": make_tools(settings.tools, settings),
            "reasoning_effort": settings.effort,
            "max_turns": settings.max_turns,
            "max_tokens_per_turn": settings.max_tokens_per_turn,
            "max_seconds": settings.max_seconds,
        }
        if settings.instructions is not None:
            options["instructions"] = settings.instructions
        if resume is not None:
            return Agent.resume(resume, model=settings.require_model(), **options)
        return Agent(settings.require_model(), **options)
    except (ConfigError, TranscriptError, ValueError, RuntimeError) as exc:
        Console(stderr=True, soft_wrap=True).print(str(exc), style="red", markup=False)
        raise typer.Exit(2) from None


def main() -> None:
    app()
