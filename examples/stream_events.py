"""Consuming `Agent.stream`: typed events as the model reasons, calls tools and answers.

    python examples/stream_events.py --model http://localhost:8000

Use this shape to drive a UI: reasoning deltas in one pane, tool activity in another,
the answer as it is written, and the final result (usage, timings) at `Done`. Model and
tool text goes through `safe_text` before it reaches the terminal, so escape sequences in
it (screen clears, clipboard writes) are shown defused instead of acting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from agent import Agent
from agent.events import (
    AnswerDelta,
    Done,
    Error,
    ReasoningDelta,
    ToolCallStarted,
    ToolResult,
    TurnEnd,
)
from agent.safe_text import safe_text
from tools.functions import function_tool


@function_tool(timeout=5)
async def lookup_population(country: str) -> int:
    """Population of a country, in people."""
    return {"norway": 5_550_000, "iceland": 390_000}.get(country.lower(), 0)


async def main(model: str, max_tokens_per_turn: int) -> int:
    agent = Agent(
        model,
        tools=[lookup_population],
        reasoning_effort="low",
        max_turns=4,
        max_tokens_per_turn=max_tokens_per_turn,
    )
    async with agent:
        async for event in agent.stream("How many more people live in Norway than Iceland?"):
            match event:
                case ReasoningDelta(text=text):
                    sys.stdout.write(f"\x1b[2m{safe_text(text)}\x1b[0m")
                case AnswerDelta(text=text):
                    sys.stdout.write(safe_text(text))
                case ToolCallStarted(recipient=recipient):
                    print(f"\n[calling {safe_text(recipient)}]")
                case ToolResult(call=call):
                    print(safe_text(f"[{call.recipient} -> {call.output}]"))
                case TurnEnd(stats=stats):
                    print(f"\n[turn {stats.turn}: {stats.usage.completion_tokens} tokens]")
                case Error(message=message):
                    print(f"\n[error: {safe_text(message)}]")
                case Done(result=result):
                    print(f"[done: {result.stop_reason} in {result.seconds:.1f} s]")
                    return 0 if result.stop_reason != "error" else 1
    return 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("OSS_AGENT_MODEL"))
    parser.add_argument("--max-tokens-per-turn", type=int, default=4096)
    args = parser.parse_args()
    if not args.model:
        parser.error("pass --model (a checkpoint folder or a server URL) or set OSS_AGENT_MODEL")
    sys.exit(asyncio.run(main(args.model, args.max_tokens_per_turn)))
