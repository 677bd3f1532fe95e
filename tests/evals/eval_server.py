"""A real HTTP server on loopback that speaks the OpenAI completions stream (token ids, as
vLLM sends them) and stands in for the model, as the scripted engine does in-process: it
answers each prompt with harmony text chosen by the test. Uniquely named: tests are not
packages."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from loopback import LoopbackServer

from agent.harmony import HarmonyEncodingName, load_harmony_encoding
from evals.benchmarks import get_benchmark

ENC = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


def reply(answer: str, reasoning: str = "Let me think.") -> str:
    """What the model samples: reasoning, then a final answer."""
    return (
        f"<|channel|>analysis<|message|>{reasoning}<|end|>"
        f"<|start|>assistant<|channel|>final<|message|>{answer}<|return|>"
    )


class ModelServer:
    """`respond(prompt_text) -> harmony completion`; `statuses` are answered first, one per
    request, before any 200 (429 and 503 with `Retry-After: 0`)."""

    def __init__(
        self,
        respond: Callable[[str], str],
        statuses: Iterable[int] = (),
        delay: float = 0.0,
    ) -> None:
        self.respond = respond
        self.statuses = list(statuses)
        self.delay = delay
        self.lock = threading.Lock()
        self.http = LoopbackServer(self._reply)
        self.url = self.http.url

    @property
    def requests(self) -> list[dict]:
        return [body for _, body in self.http.requests]

    def _reply(self, path: str, body: dict):
        with self.lock:
            status = self.statuses.pop(0) if self.statuses else 200
        if status != 200:
            payload = json.dumps({"error": {"message": f"status {status}"}}).encode()
            headers = {
                "Content-Type": "application/json",
                "Retry-After": "0",
                "Content-Length": str(len(payload)),
            }
            return status, headers, [payload]
        if self.delay:
            time.sleep(self.delay)
        text = self.respond(ENC.decode(body["prompt"]))
        ids = ENC.encode(text, allowed_special="all")[: body["max_tokens"]]
        return 200, {"Content-Type": "text/event-stream"}, self._stream(ids)

    @staticmethod
    def _stream(ids: list[int]) -> Iterator[bytes]:
        for start in range(0, len(ids), 8):
            chunk = {"choices": [{"index": 0, "text": "", "token_ids": ids[start : start + 8]}]}
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    def close(self) -> None:
        self.http.close()


def benchmark_answers(
    names: Iterable[str], repeats: int, seed: int = 0
) -> dict[str, tuple[str, str, int]]:
    """Each sample task of the sample files -> (gold, grader, item index), so a stand-in
    model can answer right or wrong on purpose."""
    tasks = {}
    for name in names:
        benchmark = get_benchmark(name)
        benchmark.load(sample=True)
        for index, item in enumerate(benchmark.items):
            for repeat in range(repeats):
                sample = benchmark.sample(item, repeat, seed)
                tasks[sample.task] = (sample.gold, sample.grader, index)
    return tasks


def scripted_model(tasks: dict[str, tuple[str, str, int]]) -> Callable[[str], str]:
    """Right at high effort; at other efforts right on even items, wrong on odd ones, and
    the last item gets no explicit answer. Reasoning grows with effort."""
    last = max(index for _, _, index in tasks.values())

    def respond(prompt: str) -> str:
        task = next((t for t in tasks if t in prompt), None)
        if task is None:
            return reply("I do not know this one.")
        gold, grader, index = tasks[task]
        high = "Reasoning: high" in prompt
        reasoning = "Let me think step by step. " * (12 if high else 2)
        if not high and index == last:
            return reply("It could be several things.", reasoning)
        right = high or index % 2 == 0
        if grader in ("choice",):
            letter = gold if right else ("A" if gold != "A" else "B")
            return reply(f"Answer: {letter}", reasoning)
        if grader in ("integer", "math", "numeric"):
            value = gold if right else "123456"
            return reply(f"The result is \\boxed{{{value}}}.", reasoning)
        return reply(f"Answer: {gold if right else 'something else'}", reasoning)

    return respond
