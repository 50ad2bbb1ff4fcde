"""OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama_cpp.server, LM Studio).

Chat completions, the hot path of a run, are plain HTTP posts on one aiohttp session per event
loop: the openai SDK's request building and response wrapping cost more CPU per call than the
rest of a reply's work, and importing it takes about 0.3 s. The SDK's client (``client_for``)
serves the Batch API and file uploads, where a call is rare.

There are no retries here: the job queue retries, so every attempt is counted once. The API key
is read from the environment at call time, and scrubbed from any error text.
"""

import asyncio
import contextlib
import functools
import json
import os
import ssl
import time
import weakref
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.llm.types import Completion, LlmError, ModelSpec

if TYPE_CHECKING:
    import aiohttp
    import openai

# Sent when no key variable is configured (local servers ignore it; the client needs one).
NO_KEY = "sk-no-key-required"
NOT_RETRYABLE_STATUS = {400, 401, 403, 404, 405, 409, 413, 422}
DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Connections a loop's session keeps open at most (as the SDK's own limit).
MAX_CONNECTIONS = 1000


def api_key(spec: ModelSpec) -> str:
    """The key from ``spec.api_key_env``; a missing variable is a configuration error."""
    if not spec.api_key_env:
        return NO_KEY
    value = os.environ.get(spec.api_key_env, "")
    if not value:
        raise LlmError(
            f"environment variable {spec.api_key_env} (the API key of model {spec.name!r}) "
            "is not set",
            retryable=False,
        )
    return value


def _key_reader(env: str) -> Any:
    async def read() -> str:
        return os.environ.get(env, "") or NO_KEY if env else NO_KEY

    return read


_ClientKey = tuple[str, str]


@dataclass
class _LoopClients:
    clients: dict[_ClientKey, "openai.AsyncOpenAI"] = field(default_factory=dict)
    session: "aiohttp.ClientSession | None" = None
    closer: Any = None  # the async generator that closes them when the loop shuts down


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients]
_clients = weakref.WeakKeyDictionary()


async def _close_at_shutdown(per_loop: _LoopClients) -> AsyncGenerator[None, None]:
    """Suspended for the loop's life; ``loop.shutdown_asyncgens()`` (run by asyncio.run,
    uvloop.run and pytest-asyncio before closing a loop) resumes its ``finally``, which
    closes the loop's aiohttp sessions there (an unclosed one warns when collected)."""
    try:
        yield
    finally:
        for client in list(per_loop.clients.values()):
            with contextlib.suppress(Exception):
                await client.close()
        per_loop.clients.clear()
        if per_loop.session is not None:
            with contextlib.suppress(Exception):
                await per_loop.session.close()
            per_loop.session = None


def _per_loop() -> _LoopClients:
    loop = asyncio.get_running_loop()
    per_loop = _clients.get(loop)
    if per_loop is None:
        per_loop = _clients[loop] = _LoopClients()
        closer = _close_at_shutdown(per_loop)
        # Step it to its yield now (nothing in it awaits): the first step registers it with
        # the running loop's async generator hooks. Kept referenced here, as the loop holds
        # its generators weakly.
        with contextlib.suppress(StopIteration):
            closer.asend(None).send(None)
        per_loop.closer = closer
    return per_loop


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The default verifying context (the SDK's CA bundle), built once per process (loading
    the bundle costs tens of ms of CPU; every new client would load it again)."""
    import httpx2

    return httpx2.create_ssl_context()


def session() -> "aiohttp.ClientSession":
    """This loop's HTTP session for chat calls (one connection pool for every server)."""
    per_loop = _per_loop()
    if per_loop.session is None or per_loop.session.closed:
        import aiohttp

        per_loop.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
            skip_auto_headers=("User-Agent",),
        )
    return per_loop.session


def client_for(base_url: str, api_key_env: str) -> "openai.AsyncOpenAI":
    """One SDK client (and connection pool) per server and key variable; the key is read per
    call. For the Batch API and files; chat calls use ``session()``.

    Cached per event loop: a pool's connections belong to the loop that opened them. The
    transport is aiohttp (``openai[aiohttp]``). The clients are closed when their loop shuts
    down.
    """
    import openai

    per_loop = _per_loop()
    key = (base_url, api_key_env)
    client = per_loop.clients.get(key)
    if client is None:
        client = openai.AsyncOpenAI(
            base_url=base_url or None,
            api_key=_key_reader(api_key_env),
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(verify=_tls_context()),
        )
        per_loop.clients[key] = client
    return client


async def close_clients() -> None:
    """Close this loop's clients now (e.g. before a loop that is closed without shutdown)."""
    per_loop = _clients.pop(asyncio.get_running_loop(), None)
    if per_loop is not None:
        await per_loop.closer.aclose()


def scrub(text: str, secret: str) -> str:
    if secret and secret != NO_KEY and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds from a Retry-After (or retry-after-ms) header; HTTP dates are read too."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def status_error(status: int, detail: str, headers: Any, secret: str) -> LlmError:
    """An HTTP error status as an LlmError: 429 and 503 with the server's Retry-After."""
    detail = scrub(detail[:500], secret)
    if status in (429, 503):
        return LlmError(
            f"HTTP {status}: {detail}", retryable=True, retry_after=retry_after_seconds(headers)
        )
    retryable = status >= 500 or status not in NOT_RETRYABLE_STATUS
    return LlmError(f"HTTP {status}: {detail}", retryable=retryable)


def map_error(exc: Exception, secret: str) -> LlmError:
    """Translate an SDK client exception into an LlmError that says whether to retry."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return LlmError("request timed out", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return LlmError(scrub(f"connection error: {exc}", secret), retryable=True)
    if isinstance(exc, openai.APIStatusError):
        return status_error(exc.status_code, str(exc.message), exc.response.headers, secret)
    if isinstance(exc, openai.APIResponseValidationError | ValueError):
        return LlmError(scrub(f"malformed response: {type(exc).__name__}", secret), retryable=True)
    return LlmError(scrub(f"{type(exc).__name__}: {exc}"[:500], secret), retryable=True)


def _error_detail(raw: bytes) -> str:
    """What an error body says: its ``error.message`` when it is OpenAI's JSON, else its text."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        return text or "no detail"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str) and error:
        return error
    return text


def request_params(
    spec: ModelSpec, messages: list[dict[str, str]], seed: int | None
) -> dict[str, Any]:
    """The chat completion body (also used for Batch API lines)."""
    params: dict[str, Any] = {
        "model": spec.model_id,
        "messages": messages,
        "temperature": spec.temperature,
        "top_p": spec.top_p,
        "max_tokens": spec.max_tokens,
    }
    if seed is not None:
        params["seed"] = seed
    return params


def parse_completion(data: Any, latency_ms: int = 0) -> Completion:
    """A Completion from a chat completion body (object or dict); garbled bodies are retryable."""
    if hasattr(data, "model_dump"):
        data = data.model_dump()
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"]
        usage = data.get("usage") or {}
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise TypeError("content is not text")
        return Completion(
            text=text,
            tokens_in=int(usage.get("prompt_tokens") or 0),
            tokens_out=int(usage.get("completion_tokens") or 0),
            finish_reason=str(choice.get("finish_reason") or ""),
            latency_ms=latency_ms,
        )
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise LlmError(
            f"malformed response: no chat completion in the body ({type(exc).__name__})",
            retryable=True,
        ) from None


def _headers(secret: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    # As the SDK does: the organisation and project, when the environment names them.
    for env, header in (
        ("OPENAI_ORG_ID", "OpenAI-Organization"),
        ("OPENAI_PROJECT_ID", "OpenAI-Project"),
    ):
        if os.environ.get(env):
            headers[header] = os.environ[env]
    return headers


def chat_url(base_url: str) -> str:
    base = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    return base.rstrip("/") + "/chat/completions"


async def complete(
    spec: ModelSpec, messages: list[dict[str, str]], *, seed: int | None
) -> Completion:
    import aiohttp

    if not spec.model_id:
        raise LlmError(f"model {spec.name!r} has no model id", retryable=False)
    secret = api_key(spec)
    url = chat_url(spec.base_url)
    body = json.dumps(request_params(spec, messages, seed)).encode()
    started = time.perf_counter()
    try:
        async with session().post(
            url,
            data=body,
            headers=_headers(secret),
            timeout=aiohttp.ClientTimeout(total=spec.timeout_s),
            ssl=_tls_context() if url.startswith("https:") else True,
        ) as response:
            raw = await response.read()
            status, headers = response.status, response.headers
    except TimeoutError:
        raise LlmError("request timed out", retryable=True) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise LlmError(scrub(f"connection error: {exc}", secret), retryable=True) from None
    if status >= 400:
        raise status_error(status, _error_detail(raw), headers, secret)
    latency_ms = int((time.perf_counter() - started) * 1000)
    try:
        data = json.loads(raw)
    except ValueError:
        raise LlmError("malformed response: the body is not JSON", retryable=True) from None
    return parse_completion(data, latency_ms)
