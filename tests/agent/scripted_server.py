"""A real HTTP server on loopback that speaks the OpenAI completions API (as vLLM does, token
ids included) and answers with a `ScriptedEngine`'s turns: `oss-agent` run as a subprocess
reaches it with `--model http://127.0.0.1:PORT`, through the real remote engine."""

from __future__ import annotations

import json
from collections.abc import Iterator

from loopback import LoopbackServer
from scripted_engine import ScriptedEngine


class ScriptedServer:
    """Serves `engine`'s scripted turns; `fail_first` requests get HTTP 503 first."""

    def __init__(self, engine: ScriptedEngine, fail_first: int = 0) -> None:
        self.engine = engine
        self.fail_first = fail_first
        self._http = LoopbackServer(self._reply)
        self.url = self._http.url

    def _reply(self, path: str, body: dict):
        if self.fail_first > 0:
            self.fail_first -= 1
            return 503, {}, [b"loading model"]
        tokens = self.engine.generate(
            body["prompt"],
            max_tokens=body["max_tokens"],
            stop_tokens=body.get("stop_token_ids", ()),
        )
        return 200, {"Content-Type": "text/event-stream"}, self._stream(tokens)

    @staticmethod
    def _stream(tokens: Iterator[int]) -> Iterator[bytes]:
        for token in tokens:
            chunk = {"choices": [{"index": 0, "text": "", "token_ids": [token]}]}
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    def close(self) -> None:
        self._http.close()
