"""Remote engines: the same `generate` interface, served by vLLM, SGLang, Ollama or llama.cpp.

Two kinds of server:
- OpenAI-compatible completions (vLLM, SGLang, our own server): `POST /v1/completions` with
  the prompt as token ids. vLLM returns the sampled ids (`return_token_ids`); servers that
  only return text get it re-encoded with our tokenizer.
- Raw-text servers (Ollama `/api/generate` with `raw: true`, llama.cpp `/completion`): the
  streamed text is encoded back into ids, special tokens included (these servers print
  `<|channel|>` etc. as text). llama.cpp takes the prompt as token ids and sends each sampled
  id; Ollama only takes text, so text in the conversation that merely looks like a special
  token is broken up first (see `prompt_markup`): the server would otherwise read a user's
  `<|end|>` as the token.

Servers stop on the model's end tokens themselves and most leave that token out of what they
stream; `end_token` turns what each one reports instead into the token the caller expects.
After the stop token the rest of the response (the usage chunk with the prompt's cache use)
is still read, for at most `usage_wait` seconds. Failures before the first token are retried
under `agent.http_retry.RetryPolicy`; after it a retry would repeat tokens the caller has.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx

from agent.harmony import HarmonyEncoding, HarmonyEncodingName, load_harmony_encoding
from agent.http_retry import RetryPolicy
from runtime.engine import Engine, GenerationStats, Sampling

log = logging.getLogger(__name__)
_TOKEN_ID_PREFIX = "token_id:"
START, MESSAGE, RETURN, CALL, END_OF_TEXT = 200006, 200008, 200002, 200012, 199999


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


def end_token(
    encoding: HarmonyEncoding,
    sampled: Sequence[int],
    *,
    stopped: bool,
    token: int | None = None,
    word: str | None = None,
) -> int | None:
    """The stop token that ended a completion, from what the server reported at its end;
    None when it did not end on one (the token limit) or the stream already carried it.

    What each server reports when gpt-oss ends a message with `<|return|>` / `<|call|>`:

    | server            | end of completion       | names the token        | stop token streamed |
    |-------------------|-------------------------|------------------------|---------------------|
    | vLLM >= 0.10.2    | finish_reason "stop"    | stop_reason: the id    | yes, in token_ids   |
    | (return_token_ids)|                         | (stop_token_ids), null | (not in text)       |
    |                   |                         | (the tokenizer's EOS)  |                     |
    | vLLM < 0.10.2     | finish_reason "stop"    | as above               | no: text only,      |
    |                   |                         |                        | stop token left out |
    | SGLang            | finish_reason "stop"    | matched_stop: the id   | no (trimmed)        |
    |                   |                         | (EOS too) or string    |                     |
    | Ollama raw        | done true,              | no                     | no                  |
    | /api/generate     | done_reason "stop"      |                        |                     |
    | llama.cpp         | stop true, stop_type    | stopping_word ("word") | the id in tokens,   |
    | /completion       | "eos" or "word"         | nothing for "eos"      | not in content      |

    The token limit (finish_reason / done_reason "length", stop_type "limit") is no stop
    token: `stopped` False. A named id or stop word is that token. An unnamed end (vLLM's
    null, Ollama, llama.cpp's "eos") is the model's end-of-generation for the message it
    was writing: gpt-oss ends a message with a recipient (`to=` in its header) with
    `<|call|>`, any other with `<|return|>` (its tokenizer's EOS: vLLM's null).
    """
    if not stopped:
        return None
    last = sampled[-1] if sampled else None
    if token is None and word:
        ids = encoding.encode(word, allowed_special="all")
        if len(ids) != 1 or not encoding.is_special_token(ids[0]):
            return None
        token = ids[0]
    if token is not None:
        return None if last == token else token
    if last in (RETURN, CALL, END_OF_TEXT):
        return None
    starts = [i for i, t in enumerate(sampled) if t == START]
    message = list(sampled[starts[-1] + 1 :] if starts else sampled)
    header = message[: message.index(MESSAGE)] if MESSAGE in message else message
    return CALL if " to=" in " " + encoding.decode(header).replace("<|", " <|") else RETURN


class RemoteError(RuntimeError):
    """The server could not be reached or answered something we cannot use."""


class RemoteEngine(Engine):
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
        max_retry_wait: float = 30.0,
        usage_wait: float = 0.5,
        encoding: HarmonyEncoding | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.retry = RetryPolicy(retries, backoff, max_retry_wait)
        self.usage_wait = usage_wait
        self.encoding = encoding or load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
        self.last_stats: GenerationStats | None = None
        self._active: httpx.Response | None = None
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
        """Stream new ids; a stop token is yielded last, then the rest of the response is
        read for its usage report (bounded by `usage_wait`) and closed."""
        tokens = list(tokens)
        sampling = Sampling(max_tokens, temperature, top_p, seed, frozenset(stop_tokens))
        self.last_stats = None
        path, body = self._request(tokens, sampling)
        with self._open(path, body) as response:
            self._active = response
            reader = self._read(response, tokens)
            for token in reader:
                if token not in sampling.stop_tokens:
                    yield token
                    continue
                try:
                    yield token
                finally:  # also when the caller closes us right after the stop token
                    self._read_rest(response, reader)
                return

    def cancel(self) -> None:
        """Cut the response being streamed (a `generate` blocked waiting for the server
        raises `RemoteError` at once)."""
        response = self._active
        if response is not None and not response.is_closed:
            _abort(response)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- for subclasses -------------------------------------------------------------------

    def _request(self, tokens: list[int], sampling: Sampling) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def _read(self, response: httpx.Response, prompt: list[int]) -> Iterator[int]:
        """The sampled ids, ending with the stop token `end_token` names; sets `last_stats`
        when the server reports its cache use."""
        raise NotImplementedError

    def _stats(self, prompt: list[int], prefilled: int) -> None:
        self.last_stats = GenerationStats(
            prompt_tokens=len(prompt),
            prefilled=min(prefilled, len(prompt)),
            reused=max(len(prompt) - prefilled, 0),
        )

    # -- plumbing -------------------------------------------------------------------------

    def _open(self, path: str, body: dict[str, Any]) -> _Stream:
        url = self.base_url + path
        attempt = 0
        while True:
            try:
                request = self._client.build_request("POST", url, json=body)
                response = self._client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                delay = self.retry.delay(attempt)
                reason = f"cannot connect to {url}: {exc}"
                if delay is None:
                    raise RemoteError(
                        f"cannot connect to {url} ({exc}). Is the server running and is the "
                        "URL right? Pass --model with the server's address, or a checkpoint "
                        "path to run locally."
                    ) from exc
            except httpx.TimeoutException as exc:
                raise RemoteError(f"{url} did not answer in time: {exc}") from exc
            else:
                if response.status_code == 200:
                    return _Stream(response, url)
                detail = response.read().decode("utf-8", errors="replace")[:500]
                response.close()
                delay = self.retry.delay(attempt, response.status_code, response.headers)
                reason = f"{url} answered HTTP {response.status_code}"
                if delay is None:
                    asked = response.headers.get("retry-after")
                    later = f" (it asks to retry after {asked}; too long to wait)" if asked else ""
                    raise RemoteError(
                        f"{url} answered HTTP {response.status_code}: "
                        f"{detail or '(no body)'}{later}"
                    )
            log.info("%s; retry %d of %d in %.1f s", reason, attempt + 1, self.retry.retries, delay)
            time.sleep(delay)
            attempt += 1

    def _read_rest(self, response: httpx.Response, reader: Iterator[int]) -> None:
        """Read what the server sends after the stop token (its usage report), giving up
        after `usage_wait` seconds: a silent server must not hold the turn."""
        timer = threading.Timer(self.usage_wait, _abort, args=(response,))
        timer.start()
        try:
            for _ in reader:
                pass
        except (httpx.HTTPError, RemoteError, OSError):
            pass  # cut off by the timer, or the server hung up: the tokens are all here
        finally:
            timer.cancel()


def _abort(response: httpx.Response) -> None:
    """Wake a read blocked on the response's socket (closing alone does not, on Linux)."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    else:
        response.close()


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


def _ints(value: Any) -> list[int] | None:
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return value
    return None


class OpenAICompletionsEngine(RemoteEngine):
    """vLLM, SGLang or oss-agent's own server: `POST /v1/completions` with token ids."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(base_url.removesuffix("/v1").rstrip("/"), **kwargs)

    def _request(self, tokens: list[int], sampling: Sampling) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "prompt": tokens,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "stop_token_ids": sorted(sampling.stop_tokens),
            "stream": True,
            "stream_options": {"include_usage": True},
            # vLLM: the sampled ids with each chunk; special tokens kept in the text for
            # servers that only send text.
            "return_token_ids": True,
            "skip_special_tokens": False,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if self.model is not None:
            body["model"] = self.model
        return "/v1/completions", body

    def _read(self, response: httpx.Response, prompt: list[int]) -> Iterator[int]:
        text_ids = _TextToIds(self.encoding)
        sampled: list[int] = []
        for event in _sse_events(response):
            self._usage(event.get("usage"), prompt)
            for choice in event.get("choices") or []:
                ids = _ints(choice.get("token_ids"))
                if ids is None:
                    ids = _logprob_ids(choice.get("logprobs"))
                if ids is None:
                    ids = text_ids.feed(choice.get("text") or "")
                finish = choice.get("finish_reason")
                if finish is not None:
                    ids = ids + text_ids.flush()
                sampled += ids
                yield from ids
                if finish is None:
                    continue
                named = choice.get("stop_reason", choice.get("matched_stop"))
                end = end_token(
                    self.encoding,
                    sampled,
                    stopped=finish == "stop",
                    token=named if isinstance(named, int) else None,
                    word=named if isinstance(named, str) else None,
                )
                if end is not None:
                    sampled.append(end)
                    yield end
        yield from text_ids.flush()

    def _usage(self, usage: Any, prompt: list[int]) -> None:
        details = (usage or {}).get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens")
        if isinstance(cached, int):
            self._stats(prompt, len(prompt) - cached)


def _logprob_ids(logprobs: Any) -> list[int] | None:
    """vLLM's older way: `return_tokens_as_token_ids` prints tokens as `token_id:N`."""
    tokens = (logprobs or {}).get("tokens") if isinstance(logprobs, dict) else None
    if not tokens or not all(str(t).startswith(_TOKEN_ID_PREFIX) for t in tokens):
        return None
    return [int(str(t)[len(_TOKEN_ID_PREFIX) :]) for t in tokens]


class OllamaEngine(RemoteEngine):
    """Ollama's `/api/generate` in raw mode: harmony markup in, text out (NDJSON lines).

    No stop strings are sent: Ollama stops on the model's end tokens itself and says only
    `done_reason: "stop"`; `end_token` names the token.
    """

    def __init__(self, base_url: str, *, model: str, **kwargs: Any) -> None:
        super().__init__(base_url, model=model, **kwargs)

    def _request(self, tokens: list[int], sampling: Sampling) -> tuple[str, dict[str, Any]]:
        options: dict[str, Any] = {
            "num_predict": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        }
        if sampling.seed is not None:
            options["seed"] = sampling.seed
        body = {
            "model": self.model,
            "prompt": prompt_markup(self.encoding, tokens),
            "raw": True,
            "stream": True,
            "options": options,
        }
        return "/api/generate", body

    def _read(self, response: httpx.Response, prompt: list[int]) -> Iterator[int]:
        text_ids = _TextToIds(self.encoding)
        url = str(response.request.url)
        sampled: list[int] = []
        for line in response.iter_lines():
            if not line.strip():
                continue
            event = _json(line, url)
            ids = text_ids.feed(event.get("response") or "")
            if not event.get("done"):
                sampled += ids
                yield from ids
                continue
            ids += text_ids.flush()
            sampled += ids
            evaluated = event.get("prompt_eval_count")
            if isinstance(evaluated, int):
                self._stats(prompt, evaluated)
            end = end_token(self.encoding, sampled, stopped=event.get("done_reason") == "stop")
            yield from ids if end is None else [*ids, end]
            return
        yield from text_ids.flush()


class LlamaCppEngine(RemoteEngine):
    """llama.cpp's server `/completion`: token ids in, ids (`tokens`) and text out (SSE).

    Builds that send no `tokens` print special tokens as text only when the server runs
    with `--special`; without it `<|channel|>` etc. arrive as nothing.
    """

    def _request(self, tokens: list[int], sampling: Sampling) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "prompt": list(tokens),  # ids, as we rendered them: no re-tokenizing on the server
            "n_predict": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "stream": True,
            "cache_prompt": True,
            "return_tokens": True,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        return "/completion", body

    def _read(self, response: httpx.Response, prompt: list[int]) -> Iterator[int]:
        text_ids = _TextToIds(self.encoding)
        sampled: list[int] = []
        for event in _sse_events(response):
            ids = _ints(event.get("tokens"))
            if not ids:  # an older build, or the last event (its ids came before)
                ids = text_ids.feed(event.get("content") or "")
            if not event.get("stop"):
                sampled += ids
                yield from ids
                continue
            ids += text_ids.flush()
            sampled += ids
            prefilled = (event.get("timings") or {}).get("prompt_n")
            if isinstance(prefilled, int):
                self._stats(prompt, prefilled)
            stop_type = event.get("stop_type")
            end = end_token(
                self.encoding,
                sampled,
                stopped=stop_type in ("eos", "word"),
                word=event.get("stopping_word") if stop_type == "word" else None,
            )
            yield from ids if end is None else [*ids, end]
            return
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
