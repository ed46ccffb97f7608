"""Where ImageGenerator reads the degraded-mode flag: in-process, or the daemon's OFREP endpoint.

The HTTP source caches for `ttl_s` and fails static: on any error it keeps the last value it read,
and before the first successful read it answers the configured default.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx
import structlog

from monitor.logs import redact_text
from monitor.net import trust_env_for
from monitor.wire import DEGRADED_FLAG, GENERATION_FLAG, OFREP_FLAGS_PATH

_log = structlog.get_logger("nbmon.flags")


class FlagSource(Protocol):
    """Anything ImageGenerator can ask "is the app in degraded mode?"; a source that raises is treated as
    unchanged (the generator keeps the last value it read)."""

    def degraded(self) -> bool: ...
    async def adegraded(self) -> bool: ...


class InProcessFlag:
    """A flag held in memory: set by the app, a test, or an embedded daemon. ImageGenerator's default source.

    `InProcessFlag(degraded=False)` starts with the given value; nothing here raises.
    """

    def __init__(self, degraded: bool = False) -> None:
        self._degraded = degraded

    def set(self, degraded: bool) -> None:
        """Switch degraded mode on (True) or off (False); the next generate() call routes accordingly."""
        self._degraded = degraded

    def degraded(self) -> bool:
        """The current value."""
        return self._degraded

    async def adegraded(self) -> bool:
        """The current value, for AsyncImageGenerator."""
        return self._degraded


class OfrepFlagSource:
    """Evaluates one boolean flag with `POST {base_url}/ofrep/v1/evaluate/flags/{key}`: the sidecar's flag.

    `OfrepFlagSource("http://127.0.0.1:8016")` reads `degraded-mode` from `nbmon run`; any OFREP server works.
    Reads are cached for `ttl_s` and fail static: on any error (connection, timeout, non-200, a value that is not a
    boolean) the last value read is kept, `default` is answered before the first successful read, the next try is
    one `ttl_s` later, and one log line marks the start of a failure streak. degraded() and adegraded() never
    raise. Loopback URLs are read without HTTP(S)_PROXY.

    Args:
        base_url: the OFREP server, e.g. the sidecar's "http://127.0.0.1:8016".
        flag_key: the flag to evaluate (default "degraded-mode").
        ttl_s: how long a read (or a failure) is reused, >= 0 (default 5).
        default: the answer before the first successful read (default False: normal mode).
        timeout_s: per request, > 0 (default 1).
        headers: extra request headers (e.g. an Authorization header for a server that needs one).
        targeting_key: the evaluation context's targetingKey (default "nbmon").
        http_client, async_http_client: httpx clients to use instead of one per read.
        clock: monotonic seconds, for tests.

    Raises:
        ValueError: ttl_s < 0 or timeout_s <= 0.
    """

    def __init__(
        self,
        base_url: str,
        *,
        flag_key: str = DEGRADED_FLAG,
        ttl_s: float = 5.0,
        default: bool = False,
        timeout_s: float = 1.0,
        headers: dict[str, str] | None = None,
        targeting_key: str = "nbmon",
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s < 0:
            raise ValueError("OfrepFlagSource.ttl_s: must be >= 0")
        if timeout_s <= 0:
            raise ValueError("OfrepFlagSource.timeout_s: must be > 0")
        self._url = f"{base_url.rstrip('/')}{OFREP_FLAGS_PATH}/{flag_key}"
        self._trust_env = trust_env_for(base_url)  # the sidecar on loopback: never through HTTP(S)_PROXY
        self._key = flag_key
        self._ttl = ttl_s
        self._timeout = timeout_s
        self._headers = headers or {}
        # targetingKey is required by the OFREP schema since 2025-11; strict servers refuse a bare context.
        self._body = {"context": {"targetingKey": targeting_key}}
        self._client = http_client
        self._aclient = async_http_client
        self._clock = clock
        self._value: bool | None = None
        self._metadata: dict[str, Any] = {}
        self._default = default
        self._fresh_until = float("-inf")
        self._failing = False
        self._refreshing = False
        self._lock = threading.Lock()
        self.errors = 0  # failed reads, for tests and health checks

    @classmethod
    def generation_allowed(cls, base_url: str, **options: Any) -> OfrepFlagSource:
        """The daemon's `generation-allowed` flag (false while a spent budget with `action = "stop"` holds), for
        `ImageGenerator(allowed_source=...)`: `degraded()` answers the flag's value, True (allowed) before the
        first read and while the daemon cannot be read. Takes the constructor's other options."""
        options.setdefault("default", True)
        return cls(base_url, flag_key=GENERATION_FLAG, **options)

    @property
    def last_value(self) -> bool | None:
        """The last value read successfully; None before the first."""
        return self._value

    @property
    def metadata(self) -> dict[str, Any]:
        """The flag's `metadata` of the last successful read (e.g. `until` and `detail` of a stop); {} before."""
        return dict(self._metadata)

    def degraded(self) -> bool:
        """The flag's value: cached for ttl_s, else read now (thread-safe: one read at a time). Never raises."""
        if self._clock() < self._fresh_until:
            return self._current()
        with self._lock:
            if self._clock() < self._fresh_until:  # another thread refreshed it meanwhile
                return self._current()
            try:
                client = self._client or httpx.Client(trust_env=self._trust_env)
                try:
                    response = client.post(self._url, json=self._body, headers=self._headers, timeout=self._timeout)
                finally:
                    if self._client is None:
                        client.close()
                self._accept(response)
            except Exception as error:  # noqa: BLE001 - fail static on anything
                self._fail(error)
            return self._current()

    async def adegraded(self) -> bool:
        """degraded() for asyncio: while one task refreshes the value, the others get the cached one. Never raises."""
        if self._clock() < self._fresh_until or self._refreshing:
            return self._current()  # fresh, or another task is refreshing it: no thundering herd
        self._refreshing = True
        try:
            if self._aclient is not None:
                response = await self._aclient.post(
                    self._url, json=self._body, headers=self._headers, timeout=self._timeout
                )
            else:
                async with httpx.AsyncClient(trust_env=self._trust_env) as client:
                    response = await client.post(
                        self._url, json=self._body, headers=self._headers, timeout=self._timeout
                    )
            self._accept(response)
        except Exception as error:  # noqa: BLE001 - fail static on anything
            self._fail(error)
        finally:
            self._refreshing = False
        return self._current()

    def _current(self) -> bool:
        return self._default if self._value is None else self._value

    def _accept(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code}: {_error_code(response)}")
        body = response.json()
        value = body.get("value") if isinstance(body, dict) else None
        if not isinstance(value, bool):
            raise ValueError(f"flag {self._key!r}: value {value!r} is not a boolean")
        self._value = value
        metadata = body.get("metadata")
        self._metadata = dict(metadata) if isinstance(metadata, dict) else {}
        self._fresh_until = self._clock() + self._ttl
        if self._failing:
            _log.info("nbmon.flag_source.recovered", url=self._url, value=value)
            self._failing = False

    def _fail(self, error: Exception) -> None:
        self.errors += 1
        # Retry after one TTL, not on every call: a dead daemon must not add latency to each generation.
        self._fresh_until = self._clock() + self._ttl
        if not self._failing:  # log the start of a failure streak, not every failed read
            _log.warning(
                "nbmon.flag_source.unavailable",
                url=self._url,
                error_type=type(error).__name__,
                error=redact_text(str(error))[:200],
                keeping=self._current(),
            )
            self._failing = True


def _error_code(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return "non-JSON body"
    return body.get("errorCode") or body.get("errorDetails") if isinstance(body, dict) else body
