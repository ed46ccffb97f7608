"""AsyncImageGenerator: the asyncio driver of the same retry engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from google import genai
from opentelemetry import context as otel_context

from monitor.generator.attempt import AttemptBuilder, AttemptResult, from_error, from_response, progress_for
from monitor.generator.base import GeneratorBase, Request, activate
from monitor.generator.engine import Call, CheckAllowed, Notice, Pace, ReadFlag, Sleep
from monitor.generator.result import ImageResult, Progress
from monitor.generator.telemetry import GeneratorTelemetry

_END = object()


class AsyncImageGenerator(GeneratorBase):
    """ImageGenerator for asyncio apps; calls `client.aio`. Same policy, routing and telemetry."""

    def __init__(self, client: genai.Client, **settings: Any) -> None:
        """Wrap `client` (a google.genai.Client; its `aio` side is used). Takes ImageGenerator's settings and
        raises what ImageGenerator's constructor raises."""
        super().__init__(**settings)
        self.client = client

    async def generate(
        self,
        prompt_or_contents: Any,
        *,
        image_size: str = "1K",
        aspect_ratio: str | None = None,
        deadline_s: float | None = None,
        **config: Any,
    ) -> ImageResult:
        """Generate one image without blocking the event loop; waits are `asyncio` sleeps (or the injected clock's).

        Takes the arguments of ImageGenerator.generate() and returns its ImageResult. Raises ValueError for a bad
        argument before any request; QuotaExhaustedError, ContentBlockedError, RetriesExhaustedError or
        GenerationError when the generator gives up; the SDK's own exception for client errors and unknown
        failures; GenerationStoppedError while `allowed_source` says generation is stopped. Reads the flag sources
        with `adegraded()`.
        """
        request = self._request(prompt_or_contents, image_size, aspect_ratio, deadline_s, config)
        steps, telemetry = self._start(request)
        try:
            operation = next(steps)
            while True:
                if isinstance(operation, Call):
                    reply: Any = await self._call(request, operation, telemetry)
                else:
                    reply = await self._perform(operation)
                operation = steps.send(reply)
        except StopIteration as done:
            result: ImageResult = done.value
            self._finish(telemetry, result, None)
            return result
        except BaseException as error:
            self._finish(telemetry, None, error)
            raise

    async def generate_stream(
        self,
        prompt_or_contents: Any,
        *,
        image_size: str = "1K",
        aspect_ratio: str | None = None,
        deadline_s: float | None = None,
        **config: Any,
    ) -> AsyncIterator[Progress]:
        """Generate like generate(), yielding Progress steps: `thought_image` and `text` as they arrive, `retry`
        and `fallback`, then one `final` step carrying the ImageResult.

        An async generator: the arguments are checked at the first iteration (ValueError), and the errors of
        generate() are raised while iterating. Closing it early ends the call without counting it as an error.
        """
        request = self._request(prompt_or_contents, image_size, aspect_ratio, deadline_s, config)
        steps, telemetry = self._start(request)
        try:
            operation = next(steps)
            while True:
                if isinstance(operation, Call):
                    builder = AttemptBuilder()
                    reply: Any = None
                    try:
                        config_ = self._config_for(request, operation.model, operation.timeout_s)
                        token = activate(telemetry)
                        try:
                            chunks = await self.client.aio.models.generate_content_stream(
                                model=operation.model, contents=request.contents, config=config_
                            )
                        finally:
                            otel_context.detach(token)
                        while True:
                            # The span is current only inside the SDK, never while the caller holds a chunk.
                            token = activate(telemetry)
                            try:
                                chunk = await anext(chunks, _END)
                            finally:
                                otel_context.detach(token)
                            if chunk is _END:
                                break
                            for progress in progress_for(builder, chunk, operation.model):
                                yield progress
                        reply = builder.finish()
                    except Exception as error:  # noqa: BLE001 - classified; the engine decides
                        reply = from_error(error)
                elif isinstance(operation, Notice):
                    yield Progress(
                        operation.kind, operation.model, wait_s=operation.wait_s, error_class=operation.error_class
                    )
                    reply = None
                else:
                    reply = await self._perform(operation)
                operation = steps.send(reply)
        except StopIteration as done:
            result: ImageResult = done.value
            self._finish(telemetry, result, None)
            yield Progress("final", result.served_model, image=result.image, mime_type=result.mime_type, result=result)
        except GeneratorExit:
            self._closed_early(telemetry)
            raise
        except BaseException as error:
            self._finish(telemetry, None, error)
            raise

    async def _call(self, request: Request, operation: Call, telemetry: GeneratorTelemetry) -> AttemptResult:
        config = self._config_for(request, operation.model, operation.timeout_s)
        token = activate(telemetry)
        try:
            response = await self.client.aio.models.generate_content(
                model=operation.model, contents=request.contents, config=config
            )
        except Exception as error:  # noqa: BLE001 - classified; the engine decides
            return from_error(error)
        finally:
            otel_context.detach(token)
        return from_response(response)

    async def _perform(self, operation: ReadFlag | CheckAllowed | Pace | Sleep | Notice) -> Any:
        if isinstance(operation, CheckAllowed):  # None, or the Halt the engine raises GenerationStoppedError for
            return await self._stop_guard.acheck() if self._stop_guard is not None else None
        if isinstance(operation, ReadFlag):
            try:
                return self._flag_read(await self.flag_source.adegraded())
            except Exception as error:  # noqa: BLE001 - a broken flag source must not break generation
                return self._flag_failed(error)
        if isinstance(operation, Pace) and self.pacer is not None:  # the wait itself is the engine's Sleep
            return await self.pacer.aacquire(
                operation.model, max_wait_s=operation.max_wait_s, images=operation.images, tokens=operation.tokens
            )
        if isinstance(operation, Sleep):
            try:
                await self.clock.asleep(operation.seconds)
            except BaseException:  # cancelled while waiting for a pacing slot: give the slot back
                if operation.slot is not None and self.pacer is not None:
                    await self.pacer.arelease(operation.slot)
                raise
        return None
