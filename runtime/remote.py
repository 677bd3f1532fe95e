"""Remote engines: the same `generate` interface, served by vLLM, SGLang, Ollama or llama.cpp.

Two kinds of server:
- OpenAI-compatible completions (vLLM, SGLang, our own server): `POST /v1/completions` with
  the prompt as token ids. vLLM returns the sampled ids (`return_token_ids`); servers that
  only return text get it re-encoded with our tokenizer.
- Raw-text servers (Ollama `/api/generate` with `raw: true`, llama.cpp `/completion`): the
  streamed text is encoded back into ids, special tokens included (these servers print
  `<|call|>` etc. as text). llama.cpp takes the prompt as token ids; Ollama only as text, so
  text in the conversation that merely looks like a special token is broken up first
  (see `prompt_markup`): the server would otherwise read a user's `<|end|>` as the token.

Connection failures, 429 and 5xx are retried with exponential backoff, but only before the
first token arrived: after that a retry would repeat tokens the caller already has.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx

from agent.harmony import HarmonyEncoding, HarmonyEncodingName, load_harmony_encoding
from runtime.engine import GenerationStats

log = logging.getLogger(__name__)
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_TOKEN_ID_PREFIX = "token_id:"


def prompt_markup(encoding: HarmonyEncoding, tokens: Sequence[int]) -> str:
    """Harmony markup for a text-only server. Special tokens become their text; ordinary
    text that spells a special token gets a zero-width space after `<|`, so the server's
    tokenizer cannot turn it into one (prompt injection)."""
    parts: list[str] = []
    run: list[int] = []
    for token in [*tokens, None]:
        if token is not None and not encoding.is_special_token(token):
            run.append(token)
            continue
        if run:
            parts.append(encoding.decode(run).replace("<|", "<\u200b|"))
            run = []
        if token is not None:
            parts.append(encoding.decode([token]))
    return "".join(parts)


class RemoteError(RuntimeError):
    """The server could not be reached or answered something we cannot use."""


class RemoteEngine:
    """Shared HTTP plumbing: one client, bounded retries, streamed responses.

    Subclasses say what to send (`_request`) and how to read the stream (`_read`).
    `last_stats` holds the prompt's cache use when the server reports it, else None.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 600.0,
        connect_timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        encoding: HarmonyEncoding | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.retries = retries
        self.backoff = backoff
        self.encoding = encoding or load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
        self.last_stats: GenerationStats | None = None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout, connect=connect_timeout)
        )

    def generate(
        self,
        tokens: Sequence[int],
        *,
        max_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop_tokens: Iterable[int] = (),
    ) -> Iterator[int]:
        """Stream new ids; a stop token is yielded last, then the response is closed."""
        tokens, stop = list(tokens), frozenset(stop_tokens)
        self.last_stats = None
        path, body = self._request(tokens, max_tokens, temperature, top_p, seed, stop)
        with self._open(path, body) as response:
            for token in self._read(response, tokens, stop):
                yield token
                if token in stop:
                    return

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- for subclasses -------------------------------------------------------------------

    def _request(
        self,
        tokens: list[int],
        max_tokens: int,
        temperature: float,
        top_p: float,
        seed: int | None,
        stop: frozenset[int],
    ) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def _read(
        self, response: httpx.Response, prompt: list[int], stop: frozenset[int]
    ) -> Iterator[int]:
        raise NotImplementedError

    # -- plumbing -------------------------------------------------------------------------

    def _open(self, path: str, body: dict[str, Any]) -> _Stream:
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                request = self._client.build_request("POST", url, json=body)
                response = self._client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if last:
                    raise RemoteError(
                        f"cannot connect to {url} ({exc}). Is the server running and is the "
                        "URL right? Pass --model with the server's address, or a checkpoint "
                        "path to run locally."
                    ) from exc
                self._sleep(attempt, None, f"cannot connect to {url}: {exc}")
                continue
            except httpx.TimeoutException as exc:
                raise RemoteError(f"{url} did not answer in time: {exc}") from exc
            if response.status_code == 200:
                return _Stream(response, url)
            detail = response.read().decode("utf-8", errors="replace")[:500]
            response.close()
            if response.status_code in RETRY_STATUS and not last:
                reason = f"{url} answered HTTP {response.status_code}"
                self._sleep(attempt, response.headers.get("retry-after"), reason)
                continue
            raise RemoteError(
                f"{url} answered HTTP {response.status_code}: {detail or '(no body)'}"
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _sleep(self, attempt: int, retry_after: str | None, reason: str) -> None:
        delay = min(self.backoff * 2**attempt, 30.0)
        if retry_after is not None and retry_after.isdigit():
            delay = min(float(retry_after), 30.0)
        log.info("%s; retry %d of %d in %.1f s", reason, attempt + 1, self.retries, delay)
        time.sleep(delay)


class _Stream:
    """A streamed response, read as lines; errors while reading become `RemoteError`."""

    def __init__(self, response: httpx.Response, url: str) -> None:
        self.response = response
        self.url = url

    def __enter__(self) -> httpx.Response:
        return self.response

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.response.close()
        if isinstance(exc, httpx.HTTPError):
            raise RemoteError(f"the stream from {self.url} broke off: {exc}") from exc


def _json(line: str, url: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        raise RemoteError(f"{url} sent something that is not JSON: {line[:200]!r}") from None
    if not isinstance(data, dict):
        raise RemoteError(f"{url} sent JSON that is not an object: {line[:200]!r}")
    if "error" in data:
        raise RemoteError(f"{url} reported an error: {data['error']}")
    return data


def _sse_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The JSON payloads of a server-sent event stream, up to `[DONE]`."""
    url = str(response.request.url)
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue
        payload = line[len("data:") :].strip()
        if payload == "[DONE]":
            return
        yield _json(payload, url)


class _TextToIds:
    """Streamed text back to ids. Special tokens count (the model printed them), and text
    that may be the start of one (`<|ca`) waits for the next piece."""

    def __init__(self, encoding: HarmonyEncoding) -> None:
        self.encoding = encoding
        self.pending = ""

    def feed(self, text: str) -> list[int]:
        self.pending += text
        cut = self.pending.rfind("<|")
        if cut >= 0 and "|>" not in self.pending[cut:]:
            ready, self.pending = self.pending[:cut], self.pending[cut:]
        else:
            ready, self.pending = self.pending, ""
        return self.encoding.encode(ready, allowed_special="all") if ready else []

    def flush(self) -> list[int]:
        ready, self.pending = self.pending, ""
        return self.encoding.encode(ready, allowed_special="all") if ready else []


class OpenAICompletionsEngine(RemoteEngine):
    """vLLM, SGLang or oss-agent's own server: `POST /v1/completions` with token ids."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(base_url.removesuffix("/v1").rstrip("/"), **kwargs)

    def _request(self, tokens, max_tokens, temperature, top_p, seed, stop):
        body: dict[str, Any] = {
            "prompt": tokens,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "stop_token_ids": sorted(stop),
            "stream": True,
            "stream_options": {"include_usage": True},
            # vLLM: the sampled ids with each chunk; special tokens kept in the text for
            # servers that only send text.
            "return_token_ids": True,
            "skip_special_tokens": False,
        }
        if seed is not None:
            body["seed"] = seed
        if self.model is not None:
            body["model"] = self.model
        return "/v1/completions", body

    def _read(self, response, prompt, stop):
        text_ids = _TextToIds(self.encoding)
        last: int | None = None
        for event in _sse_events(response):
            self._usage(event.get("usage"), len(prompt))
            for choice in event.get("choices") or []:
                ids = choice.get("token_ids")
                if ids is None:
                    ids = _logprob_ids(choice.get("logprobs"))
                if ids is None:
                    ids = text_ids.feed(choice.get("text") or "")
                for token in ids:
                    last = token
                    yield token
                # Servers that stop on a stop id may leave it out of the stream but name it.
                stopped_by = choice.get("stop_reason", choice.get("matched_stop"))
                if isinstance(stopped_by, int) and stopped_by in stop and last != stopped_by:
                    last = stopped_by
                    yield stopped_by
        yield from text_ids.flush()

    def _usage(self, usage: Any, prompt_tokens: int) -> None:
        details = (usage or {}).get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens")
        if isinstance(cached, int):
            self.last_stats = GenerationStats(
                prompt_tokens=prompt_tokens, prefilled=prompt_tokens - cached, reused=cached
            )


def _logprob_ids(logprobs: Any) -> list[int] | None:
    """vLLM's older way: `return_tokens_as_token_ids` prints tokens as `token_id:N`."""
    tokens = (logprobs or {}).get("tokens") if isinstance(logprobs, dict) else None
    if not tokens or not all(str(t).startswith(_TOKEN_ID_PREFIX) for t in tokens):
        return None
    return [int(str(t)[len(_TOKEN_ID_PREFIX) :]) for t in tokens]


class OllamaEngine(RemoteEngine):
    """Ollama's `/api/generate` in raw mode: harmony markup in, text out (NDJSON lines).

    No stop strings are sent: Ollama would cut them from the text, and the loop needs to
    know which one ended the turn; the stream is closed as soon as one is seen instead.
    """

    def __init__(self, base_url: str, *, model: str, **kwargs: Any) -> None:
        super().__init__(base_url, model=model, **kwargs)

    def _request(self, tokens, max_tokens, temperature, top_p, seed, stop):
        options: dict[str, Any] = {
            "num_predict": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
        }
        if seed is not None:
            options["seed"] = seed
        body = {
            "model": self.model,
            "prompt": prompt_markup(self.encoding, tokens),
            "raw": True,
            "stream": True,
            "options": options,
        }
        return "/api/generate", body

    def _read(self, response, prompt, stop):
        text_ids = _TextToIds(self.encoding)
        url = str(response.request.url)
        for line in response.iter_lines():
            if not line.strip():
                continue
            event = _json(line, url)
            yield from text_ids.feed(event.get("response") or "")
            if event.get("done"):
                evaluated = event.get("prompt_eval_count")
                if isinstance(evaluated, int):
                    self.last_stats = GenerationStats(
                        prompt_tokens=len(prompt),
                        prefilled=evaluated,
                        reused=max(len(prompt) - evaluated, 0),
                    )
                break
        yield from text_ids.flush()


class LlamaCppEngine(RemoteEngine):
    """llama.cpp's server `/completion`: harmony markup in, streamed text out (SSE)."""

    def _request(self, tokens, max_tokens, temperature, top_p, seed, stop):
        body: dict[str, Any] = {
            "prompt": list(tokens),  # ids, as we rendered them: no re-tokenizing on the server
            "n_predict": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "stream": True,
            "cache_prompt": True,
        }
        if seed is not None:
            body["seed"] = seed
        return "/completion", body

    def _read(self, response, prompt, stop):
        text_ids = _TextToIds(self.encoding)
        for event in _sse_events(response):
            yield from text_ids.feed(event.get("content") or "")
            prefilled = (event.get("timings") or {}).get("prompt_n")
            if event.get("stop") and isinstance(prefilled, int):
                self.last_stats = GenerationStats(
                    prompt_tokens=len(prompt),
                    prefilled=prefilled,
                    reused=max(len(prompt) - prefilled, 0),
                )
        yield from text_ids.flush()


def connect(url: str, **kwargs: Any) -> RemoteEngine:
    """A remote engine for a URL; the path (or a `+kind` scheme) says which server it is.

    - `http://host:8000` or `.../v1`: OpenAI-compatible completions (vLLM, SGLang, ours)
    - `http://host:11434/api/generate?model=gpt-oss:20b` or `ollama+http://host:11434?model=..`
    - `http://host:8080/completion` or `llamacpp+http://host:8080`
    `?model=NAME` sets the model name sent to the server.
    """
    parts = urlsplit(url)
    scheme, _, kind = parts.scheme.partition("+")
    scheme, kind = (kind, scheme) if kind else (scheme, "")
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL {url!r}: use http:// or https://")
    query = parse_qs(parts.query)
    if "model" in query:
        kwargs.setdefault("model", query["model"][0])
    path = parts.path.rstrip("/")
    if not kind:
        if path.endswith("/api/generate"):
            kind = "ollama"
        elif path.endswith("/completion"):
            kind = "llamacpp"
        else:
            kind = "openai"
    for suffix in ("/api/generate", "/completion", "/v1/completions"):
        path = path.removesuffix(suffix)
    base = urlunsplit((scheme, parts.netloc, path, "", ""))
    if kind == "ollama":
        if "model" not in kwargs:
            raise ValueError(
                f"Ollama needs a model name: {url}?model=gpt-oss:20b (see `ollama list`)"
            )
        return OllamaEngine(base, **kwargs)
    if kind == "llamacpp":
        return LlamaCppEngine(base, **kwargs)
    if kind == "openai":
        return OpenAICompletionsEngine(base, **kwargs)
    raise ValueError(f"unknown server kind {kind!r} in {url!r}: use ollama+ or llamacpp+")
