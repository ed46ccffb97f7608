"""ImageGenerator: the synchronous driver of the retry engine."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from google import genai
from opentelemetry import context as otel_context

from monitor.generator.attempt import AttemptBuilder, AttemptResult, from_error, from_response, progress_for
from monitor.generator.base import GeneratorBase, Request, activate
from monitor.generator.engine import Call, CheckAllowed, Notice, Pace, ReadFlag, Sleep
from monitor.generator.result import ImageResult, Progress
from monitor.generator.telemetry import GeneratorTelemetry

_END = object()


class ImageGenerator(GeneratorBase):
    """Generates one image with server-honouring retries, Flash fallback and degraded-mode routing.

    Replaces the article's ResilientImageGenerator. Wraps a google.genai.Client; instrument() still
    counts every attempt, and this class adds retries, waits, fallbacks and routing to the same registry.
    docs/generator.md describes the policy and the routing.
    """

    def __init__(self, client: genai.Client, **settings: Any) -> None:
        """Wrap `client` (a google.genai.Client).

        Settings, all keyword-only: `primary_model` and `fallback_model` (default: the config's `[models]`),
        `fallback=True` (False: no fallback model), `policy` (a RetryPolicy), `flag_source` (default
        InProcessFlag(); OfrepFlagSource reads the sidecar's flag), `canary_share=0.05` (share of calls kept on
        the primary while degraded), `config` (a ShimConfig; default: the file in $NBMON_CONFIG, else
        $NBMON_CONFIG_FILE, else the defaults), `clock` (VirtualClock for instant waits), `rng`, `registry`
        (default: prometheus_client's global one), `tracer_provider` (default: the global one) and
        `allowed_source` (default None: never stopped; `OfrepFlagSource.generation_allowed(url)` reads the daemon's
        `generation-allowed` flag, and while it is false each call raises GenerationStoppedError, sending nothing).

        Raises ValueError when the fallback equals the primary or `canary_share` is not between 0 and 1, and
        ConfigError when the configuration file is invalid.
        """
        super().__init__(**settings)
        self.client = client

    def generate(
        self,
        prompt_or_contents: Any,
        *,
        image_size: str = "1K",
        aspect_ratio: str | None = None,
        deadline_s: float | None = None,
        **config: Any,
    ) -> ImageResult:
        """Generate one image, retrying, re-rolling and falling back as the policy says; return the final image.

        Args:
            prompt_or_contents: a prompt string, or contents as google-genai takes them (a list of Content for a
                conversation).
            image_size: one the primary model takes in the catalog ("512px", "1K", "2K", "4K"). A size the fallback
                does not take is left out of the fallback's request.
            aspect_ratio: "1:1", "16:9", ... or None for the model's default.
            deadline_s: bounds the whole call, waits included (default: the policy's deadline_s, 900 s). No wait is
                started that would end past it, and each request's HTTP timeout is what is left of it.
            **config: more GenerateContentConfig fields (safety_settings, temperature, ...). response_modalities and
                image_config are set by the generator.

        Returns:
            An ImageResult: the image, the model that served it, attempts, waits, the classes met, the cost.

        Raises:
            ValueError: a bad argument, before any request is sent.
            QuotaExhaustedError: a per-day quota is used up and there is no fallback (or fallback_on_quota is off).
            ContentBlockedError: a policy block, a prompt block, or an output block / no image after the re-rolls.
            RetriesExhaustedError: the retries (and the fallback, if any) ran out, or the deadline left no room.
            GenerationStoppedError: `allowed_source` says generation is stopped; the next request was not sent.
            GenerationError: any other failure the generator gives up on.
            The SDK's own exception, unchanged, for client errors (billing_limited, invalid_argument,
            failed_precondition, permission_denied, not_found) and unknown failures.
        """
        request = self._request(prompt_or_contents, image_size, aspect_ratio, deadline_s, config)
        steps, telemetry = self._start(request)
        result: ImageResult | None = None
        try:
            operation = next(steps)
            while True:
                if isinstance(operation, Call):
                    reply: Any = self._call(request, operation, telemetry)
                else:
                    reply = self._perform(operation)
                operation = steps.send(reply)
        except StopIteration as done:
            result = done.value
            return result
        except BaseException as error:
            self._finish(telemetry, None, error)
            raise
        finally:
            if result is not None:
                self._finish(telemetry, result, None)

    def generate_stream(
        self,
        prompt_or_contents: Any,
        *,
        image_size: str = "1K",
        aspect_ratio: str | None = None,
        deadline_s: float | None = None,
        **config: Any,
    ) -> Iterator[Progress]:
        """Generate like generate(), yielding Progress steps as they happen.

        Takes the same arguments as generate(). Yields `thought_image` and `text` steps as the stream delivers
        them, `retry` (with wait_s and error_class) and `fallback` steps, then one `final` step whose `result` is
        the ImageResult. Bad arguments raise ValueError at once, before the iterator is returned; the other errors
        of generate() are raised while iterating. Closing the iterator early ends the call without counting it as
        an error.
        """
        request = self._request(prompt_or_contents, image_size, aspect_ratio, deadline_s, config)
        return self._stream(request)

    def _stream(self, request: Request) -> Iterator[Progress]:
        steps, telemetry = self._start(request)
        try:
            operation = next(steps)
            while True:
                if isinstance(operation, Call):
                    builder = AttemptBuilder()
                    reply: Any = None
                    try:
                        config = self._config_for(request, operation.model, operation.timeout_s)
                        token = activate(telemetry)
                        try:
                            chunks = iter(
                                self.client.models.generate_content_stream(
                                    model=operation.model, contents=request.contents, config=config
                                )
                            )
                        finally:
                            otel_context.detach(token)
                        while True:
                            # The span is current only inside the SDK, never while the caller holds a chunk.
                            token = activate(telemetry)
                            try:
                                chunk = next(chunks, _END)
                            finally:
                                otel_context.detach(token)
                            if chunk is _END:
                                break
                            yield from progress_for(builder, chunk, operation.model)
                        reply = builder.finish()
                    except Exception as error:  # noqa: BLE001 - classified; the engine decides
                        reply = from_error(error)
                elif isinstance(operation, Notice):
                    yield Progress(
                        operation.kind, operation.model, wait_s=operation.wait_s, error_class=operation.error_class
                    )
                    reply = None
                else:
                    reply = self._perform(operation)
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

    def _call(self, request: Request, operation: Call, telemetry: GeneratorTelemetry) -> AttemptResult:
        config = self._config_for(request, operation.model, operation.timeout_s)
        token = activate(telemetry)
        try:
            response = self.client.models.generate_content(
                model=operation.model, contents=request.contents, config=config
            )
        except Exception as error:  # noqa: BLE001 - classified; the engine decides
            return from_error(error)
        finally:
            otel_context.detach(token)
        return from_response(response)

    def _perform(self, operation: ReadFlag | CheckAllowed | Pace | Sleep | Notice) -> Any:
        if isinstance(operation, CheckAllowed):  # None, or the Halt the engine raises GenerationStoppedError for
            return self._stop_guard.check() if self._stop_guard is not None else None
        if isinstance(operation, ReadFlag):
            try:
                return self._flag_read(self.flag_source.degraded())
            except Exception as error:  # noqa: BLE001 - a broken flag source must not break generation
                return self._flag_failed(error)
        if isinstance(operation, Pace) and self.pacer is not None:  # the wait itself is the engine's Sleep
            return self.pacer.acquire(
                operation.model, max_wait_s=operation.max_wait_s, images=operation.images, tokens=operation.tokens
            )
        if isinstance(operation, Sleep):
            try:
                self.clock.sleep(operation.seconds)
            except BaseException:  # interrupted while waiting for a pacing slot: give the slot back
                if operation.slot is not None and self.pacer is not None:
                    self.pacer.release(operation.slot)
                raise
        return None
