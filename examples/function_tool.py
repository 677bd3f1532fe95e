"""An agent with a custom function tool.

    python examples/function_tool.py --model http://localhost:8000      # vLLM / SGLang
    python examples/function_tool.py --model gpt-oss-20b/original       # local weights

The function's type hints and docstring become the tool definition the model reads;
the model's JSON arguments are validated against them before the function runs.
"""

from __future__ import annotations

import argparse
import os
from typing import Literal

from agent import Agent
from tools.functions import function_tool


@function_tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict:
    """Current weather for a city.

    Args:
        city: City name, e.g. "Oslo".
        unit: Temperature unit.
    """
    # A real tool would call a weather API here.
    return {"city": city, "temperature": 21 if unit == "celsius" else 70, "sky": "clear"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("OSS_AGENT_MODEL"), required=False)
    parser.add_argument("--max-tokens-per-turn", type=int, default=4096)
    args = parser.parse_args()
    if not args.model:
        parser.error("pass --model (a checkpoint folder or a server URL) or set OSS_AGENT_MODEL")

    with Agent(
        args.model,
        tools=[get_weather],
        instructions="Answer weather questions with the get_weather tool.",
        reasoning_effort="low",
        max_turns=4,
        max_tokens_per_turn=args.max_tokens_per_turn,
    ) as agent:
        result = agent.run("Should I bring a jacket in Oslo today?")

    for call in result.tool_calls:
        print(f"tool call: {call.recipient}({call.arguments}) -> {call.output}")
    print(f"answer: {result.final_output}")
    print(f"stopped: {result.stop_reason}; tokens: {result.usage.model_dump()}")


if __name__ == "__main__":
    main()
