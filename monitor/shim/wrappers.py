"""The wrappers around google-genai: four public generate methods and the two HTTP-attempt hooks.

Each wrapper returns the SDK's own result, yields the SDK's own chunks and lets the SDK's own
exception leave through a bare `raise`. The recorder is resolved per call, so uninstrument() and
the kill switch take effect at once.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from monitor.shim.recorder import Call, Recorder, came_through_proxy

CURRENT_CALL: contextvars.ContextVar[Call | None] = contextvars.ContextVar("nbmon_call", default=None)

RecorderGetter = Callable[[], Recorder | None]
_Tokens = tuple[contextvars.Token[Call | None], "contextvars.Token[otel_context.Context] | None"]


def _attach(call: Call) -> contextvars.Token[otel_context.Context] | None:
    """Make the call's span current; None if OTel failed (it must not, but the app's call still goes through)."""
    try:
        return otel_context.attach(trace.set_span_in_context(call.span))
    except Exception:  # noqa: BLE001
        return None


def _activate(call: Call) -> _Tokens:
    # Without a valid span context (no OTel SDK, no current span) attaching would change nothing.
    return CURRENT_CALL.set(call), _attach(call) if call.attach else None


def _deactivate(tokens: _Tokens) -> None:
    if tokens[1] is not None:
        otel_context.detach(tokens[1])
    CURRENT_CALL.reset(tokens[0])


def wrap_generate(original: Callable[..., Any], get: RecorderGetter) -> Callable[..., Any]:
    @functools.wraps(original)
    def generate_content(self: Any, *args: Any, **kwargs: Any) -> Any:
        recorder = get()
        if recorder is None or CURRENT_CALL.get() is not None:
            return original(self, *args, **kwargs)
        call = recorder.start(self, kwargs, stream=False)
        if call is None:
            return original(self, *args, **kwargs)
        tokens = _activate(call)
        try:
            response = original(self, *args, **kwargs)
        except BaseException as error:
            _deactivate(tokens)
            recorder.finish_exception(call, error)
            raise
        _deactivate(tokens)
        recorder.finish_response(call, response)
        return response

    return generate_content


def wrap_generate_async(original: Callable[..., Any], get: RecorderGetter) -> Callable[..., Any]:
    @functools.wraps(original)
    async def generate_content(self: Any, *args: Any, **kwargs: Any) -> Any:
        recorder = get()
        if recorder is None or CURRENT_CALL.get() is not None:
            return await original(self, *args, **kwargs)
        call = recorder.start(self, kwargs, stream=False)
        if call is None:
            return await original(self, *args, **kwargs)
        tokens = _activate(call)
        try:
            response = await original(self, *args, **kwargs)
        except BaseException as error:
            _deactivate(tokens)
            recorder.finish_exception(call, error)
            raise
        _deactivate(tokens)
        recorder.finish_response(call, response)
        return response

    return generate_content


def wrap_stream(original: Callable[..., Any], get: RecorderGetter) -> Callable[..., Any]:
    @functools.wraps(original)
    def generate_content_stream(self: Any, *args: Any, **kwargs: Any) -> Any:
        recorder = get()
        if recorder is None or CURRENT_CALL.get() is not None:
            return original(self, *args, **kwargs)
        call = recorder.start(self, kwargs, stream=True)
        if call is None:
            return original(self, *args, **kwargs)
        tokens = _activate(call)
        try:
            chunks = original(self, *args, **kwargs)
        except BaseException as error:
            _deactivate(tokens)
            recorder.finish_exception(call, error)
            raise
        _deactivate(tokens)
        return _iterate(chunks, call, recorder)

    return generate_content_stream


def _iterate(chunks: Iterator[Any], call: Call, recorder: Recorder) -> Iterator[Any]:
    # The HTTP request happens inside next(), so the call is active only around it.
    completed = False
    try:
        while True:
            tokens = _activate(call)
            try:
                chunk = next(chunks)
            except StopIteration:
                completed = True
                break
            except BaseException as error:
                recorder.finish_exception(call, error)
                raise
            finally:
                _deactivate(tokens)
            recorder.add_chunk(call, chunk)
            yield chunk
    finally:
        if completed:
            recorder.finish_stream(call)
        elif not call.finished:  # the app closed the generator early
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
            recorder.finish_stream(call, closed_early=True)


def wrap_stream_async(original: Callable[..., Any], get: RecorderGetter) -> Callable[..., Any]:
    @functools.wraps(original)
    async def generate_content_stream(self: Any, *args: Any, **kwargs: Any) -> Any:
        recorder = get()
        if recorder is None or CURRENT_CALL.get() is not None:
            return await original(self, *args, **kwargs)
        call = recorder.start(self, kwargs, stream=True)
        if call is None:
            return await original(self, *args, **kwargs)
        tokens = _activate(call)
        try:
            chunks = await original(self, *args, **kwargs)
        except BaseException as error:
            _deactivate(tokens)
            recorder.finish_exception(call, error)
            raise
        _deactivate(tokens)
        return _aiterate(chunks, call, recorder)

    return generate_content_stream


async def _aiterate(chunks: AsyncIterator[Any], call: Call, recorder: Recorder) -> AsyncIterator[Any]:
    completed = False
    try:
        while True:
            tokens = _activate(call)
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                completed = True
                break
            except BaseException as error:
                recorder.finish_exception(call, error)
                raise
            finally:
                _deactivate(tokens)
            recorder.add_chunk(call, chunk)
            yield chunk
    finally:
        if completed:
            recorder.finish_stream(call)
        elif not call.finished:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
            recorder.finish_stream(call, closed_early=True)


def wrap_request_once(original: Callable[..., Any], get: RecorderGetter) -> Callable[..., Any]:
    """BaseApiClient._request_once: one HTTP attempt, called once per SDK retry."""

    @functools.wraps(original)
    def _request_once(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = CURRENT_CALL.get()
        recorder = get() if call is not None else None
        if call is None or recorder is None:
            return original(self, *args, **kwargs)
        started = recorder.attempt_started(call)
        try:
            response = original(self, *args, **kwargs)
        except BaseException as error:
            recorder.attempt_failed(call, error, started)
            raise
        call.pending_start = started  # an HTTP 200: its class depends on the content, settled at finish
        call.proxied = call.proxied or came_through_proxy(getattr(response, "headers", None))
        return response

    return _request_once


def wrap_request_once_async(original: Callable[..., Any], get: RecorderGetter) -> Callable[..., Any]:
    @functools.wraps(original)
    async def _async_request_once(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = CURRENT_CALL.get()
        recorder = get() if call is not None else None
        if call is None or recorder is None:
            return await original(self, *args, **kwargs)
        started = recorder.attempt_started(call)
        try:
            response = await original(self, *args, **kwargs)
        except BaseException as error:
            recorder.attempt_failed(call, error, started)
            raise
        call.pending_start = started
        call.proxied = call.proxied or came_through_proxy(getattr(response, "headers", None))
        return response

    return _async_request_once
