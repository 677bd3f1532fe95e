"""Loopback HTTP servers that answer exactly as each model server kind and version does.

A `ModelServer` replays scripted token streams (what the model samples) through the wire
format of one server kind, with that server's habits: where the stop token goes (or does
not), how the end of a completion is reported, where usage comes, how `max_tokens` cuts.
The shapes follow each server's source (see `runtime.remote.end_token`):

- `vllm`: vLLM >= 0.10.2 with `return_token_ids`: ids per chunk (the stop token included,
  its text left out), `finish_reason` with `stop_reason` (the id for `stop_token_ids`, null
  for the tokenizer's EOS `<|return|>`), then a usage chunk and `[DONE]`.
- `vllm-0.10.1`: the same without ids: text only, the stop token nowhere in it.
- `sglang`: text without the stop token; `matched_stop` names it (EOS included).
- `ollama`: `/api/generate` raw NDJSON; the end token is never printed; the last line says
  `done_reason` and `prompt_eval_count`.
- `llamacpp`: `/completion` SSE with `tokens` per event; special tokens print as nothing
  (no `--special`); the EOG id comes in `tokens`; a last event with `stop_type`/`timings`.
- `llamacpp-special`: an older build without `tokens`, run with `--special`: all text.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from loopback import LoopbackServer

from agent.harmony import HarmonyEncodingName, load_harmony_encoding

ENC = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
RETURN, CALL = 200002, 200012
KINDS = ("vllm", "vllm-0.10.1", "sglang", "ollama", "llamacpp", "llamacpp-special")
MODEL = "openai/gpt-oss-20b"


class ModelServer:
    """One server of `kind` on 127.0.0.1. Each completion request gets the next scripted
    turn, cut where the server would stop: at the first `<|return|>` / `<|call|>` (both are
    end tokens in gpt-oss's generation config) or at the request's token limit.

    `cached` is the prompt-cache hit to report; `stall_after_stop` holds the response open
    after the stop token (until `close`), as a server whose usage never comes;
    `stall_before_tokens` holds it before the first token, as a long prefill or a queue.
    """

    def __init__(
        self,
        kind: str,
        turns: list[list[int]] | None = None,
        *,
        cached: int | None = None,
        stall_after_stop: bool = False,
        stall_before_tokens: bool = False,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown server kind {kind!r}: one of {KINDS}")
        self.kind = kind
        self.turns = list(turns or [])
        self.cached = cached
        self.stall_after_stop = stall_after_stop
        self.stall_before_tokens = stall_before_tokens
        self._release = threading.Event()
        self._http = LoopbackServer(self._reply)
        self.requests = self._http.requests
        self.address = self._http.url

    def _reply(self, path: str, body: dict[str, Any]):
        if not self.turns:
            return 500, {}, [b"the test scripted no more turns"]
        kind = "application/x-ndjson" if self.kind == "ollama" else "text/event-stream"
        return 200, {"Content-Type": kind}, self._stream(body, self.turns.pop(0))

    def _stream(self, body: dict[str, Any], script: list[int]) -> Iterator[bytes]:
        if self.stall_before_tokens:
            self._release.wait(30)
        yield from self._answer(body, script)

    @property
    def url(self) -> str:
        """The model URL a user would give `--model` for this kind of server."""
        if self.kind == "ollama":
            return f"{self.address}/api/generate?model=gpt-oss:20b"
        if self.kind.startswith("llamacpp"):
            return f"{self.address}/completion"
        return self.address

    def prompt(self, index: int) -> list[int]:
        """The prompt of request `index` as token ids (Ollama's text is re-encoded)."""
        body = self.requests[index][1]
        if isinstance(body["prompt"], str):
            return ENC.encode(body["prompt"].replace("\u200b", ""), allowed_special="all")
        return body["prompt"]

    def close(self) -> None:
        self._release.set()
        self._http.close()

    # -- one completion -------------------------------------------------------------------

    def _answer(self, body: dict[str, Any], script: list[int]) -> Iterator[bytes]:
        limit = body.get("max_tokens") or body.get("n_predict") or body["options"]["num_predict"]
        sampled, stopped = [], False
        for token in script[:limit]:
            sampled.append(token)
            if token in (RETURN, CALL):
                stopped = True
                break
        prompt_len = len(body["prompt"]) if isinstance(body["prompt"], list) else 0
        if isinstance(body["prompt"], str):
            prompt_len = len(ENC.encode(body["prompt"], allowed_special="all"))
        evaluated = prompt_len - (self.cached or 0)
        if self.kind == "ollama":
            yield from self._ollama(sampled, stopped, evaluated)
        elif self.kind.startswith("llamacpp"):
            yield from self._llamacpp(sampled, stopped, prompt_len, evaluated)
        else:
            yield from self._openai(sampled, stopped, body["prompt"])

    def _stall(self, stopped: bool) -> None:
        if stopped and self.stall_after_stop:
            self._release.wait(30)

    def _openai(self, sampled: list[int], stopped: bool, prompt: list[int]) -> Iterator[bytes]:
        with_ids = self.kind == "vllm"
        for i, token in enumerate(sampled):
            last = i == len(sampled) - 1
            is_stop = last and stopped
            choice: dict[str, Any] = {
                "index": 0,
                "text": "" if is_stop else ENC.decode([token]),
                "logprobs": None,
                "finish_reason": None,
            }
            if self.kind == "sglang":
                choice["matched_stop"] = None
            else:
                choice["stop_reason"] = None
            if with_ids:
                choice["token_ids"] = [token]
            if last:
                choice["finish_reason"] = "stop" if stopped else "length"
                if self.kind == "sglang":
                    choice["matched_stop"] = token if stopped else None
                elif stopped and token != RETURN:  # vLLM: EOS is null, stop_token_ids by id
                    choice["stop_reason"] = token
            chunk: dict[str, Any] = {
                "id": "cmpl-1",
                "object": "text_completion",
                "created": 0,
                "model": MODEL,
                "choices": [choice],
                "usage": None,
            }
            if with_ids and i == 0:
                chunk["prompt_token_ids"] = prompt
            yield _sse(chunk)
        self._stall(stopped)
        usage: dict[str, Any] = {
            "prompt_tokens": len(prompt),
            "completion_tokens": len(sampled),
            "total_tokens": len(prompt) + len(sampled),
        }
        if self.cached is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached}
        usage_chunk = {"id": "cmpl-1", "object": "text_completion", "created": 0}
        yield _sse({**usage_chunk, "model": MODEL, "choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"

    def _ollama(self, sampled: list[int], stopped: bool, evaluated: int) -> Iterator[bytes]:
        shown = sampled[:-1] if stopped else sampled
        for token in shown:
            line = {"model": "gpt-oss:20b", "created_at": "2025-08-06T00:00:00Z"}
            yield _line({**line, "response": ENC.decode([token]), "done": False})
        self._stall(stopped)
        yield _line(
            {
                "model": "gpt-oss:20b",
                "created_at": "2025-08-06T00:00:01Z",
                "response": "",
                "done": True,
                "done_reason": "stop" if stopped else "length",
                "total_duration": 1000,
                "load_duration": 10,
                "prompt_eval_count": evaluated,
                "prompt_eval_duration": 100,
                "eval_count": len(sampled),
                "eval_duration": 500,
            }
        )

    def _llamacpp(
        self, sampled: list[int], stopped: bool, prompt_len: int, evaluated: int
    ) -> Iterator[bytes]:
        special = self.kind == "llamacpp-special"
        for i, token in enumerate(sampled):
            text = ENC.decode([token])
            event: dict[str, Any] = {"index": 0, "stop": False, "id_slot": 0}
            if special:
                event["content"] = text
            else:
                event["content"] = "" if ENC.is_special_token(token) else text
                event["tokens"] = [token]
            yield _sse({**event, "tokens_predicted": i + 1, "tokens_evaluated": prompt_len})
        self._stall(stopped)
        final = {
            "index": 0,
            "content": "",
            "id_slot": 0,
            "stop": True,
            "model": "gpt-oss-20b",
            "tokens_predicted": len(sampled),
            "tokens_evaluated": prompt_len,
            "truncated": False,
            "stop_type": "eos" if stopped else "limit",
            "stopping_word": "",
            "tokens_cached": prompt_len + len(sampled),
            "timings": {"prompt_n": evaluated, "predicted_n": len(sampled)},
        }
        if not special:
            final["tokens"] = []
        yield _sse(final)


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _line(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode() + b"\n"
