"""A research agent: searches and reads the web with the browser tool, computes with python,
and answers with citations.

Needs what this machine may not have: a Docker engine (the python tool's sandbox; see
tools/python) and a search API key, e.g. EXA_API_KEY for the default `exa` backend
(`--search tavily` with TAVILY_API_KEY, `--search searxng`, ... see tools/browser). With a
gpt-oss model behind --model, run:

    EXA_API_KEY=... python examples/research_agent.py --model http://localhost:8000 \\
        "How much did the price of solar panels fall between 2010 and 2023, per year?"
"""

from __future__ import annotations

import argparse
import asyncio
import os

from rich.console import Console

from agent import Agent
from agent.console import EventPrinter
from tools.browser import BrowserTool, create_backend
from tools.python import PythonTool


async def main(model: str, question: str, search: str) -> None:
    tools = [BrowserTool(create_backend(search)), PythonTool()]
    agent = Agent(
        model,
        tools=tools,
        instructions=(
            "Research the question with the browser, check numbers with python, and cite "
            "every claim with the browser's 【cursor†Lstart-Lend】 citations."
        ),
        reasoning_effort="high",
        max_turns=40,
        max_seconds=900,
    )
    show = EventPrinter(Console())
    async with agent:
        async for event in agent.stream(question):
            show(event)
    print(f"transcript: {agent.save('research-session.json')}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question")
    parser.add_argument("--model", default=os.environ.get("OSS_AGENT_MODEL"))
    parser.add_argument("--search", default="exa", help="search backend (see tools/browser)")
    args = parser.parse_args()
    if not args.model:
        parser.error("pass --model (a checkpoint folder or a server URL) or set OSS_AGENT_MODEL")
    asyncio.run(main(args.model, args.question, args.search))
