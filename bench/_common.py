"""Shared by the benchmarks: the fake response, the in-process transport, a span pipeline, paired timing.

Imports neither nbmon nor any instrumentation (the OTel SDK only), so the OpenTelemetry comparison can
run it in a second virtualenv with google-genai 2.x.
"""

from __future__ import annotations

import base64
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

MODEL = "gemini-3-pro-image"  # a fixture: this file may not import nbmon (see above), hence no catalog
# response_body(n) carries the final image (n bytes) and a thought image (n/4), base64: about 1.67 n in all.
SIZES = (("~50 KB", 30_000), ("~1.5 MB", 900_000))


class DropExporter(SpanExporter):
    """Receives every span, sends nothing (the SDK's span work is counted, a network is not); counts them
    so a benchmark can prove spans were made."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)  # only the batch processor's one worker thread calls this
        return SpanExportResult.SUCCESS


def dropping_tracer_provider(*, timer: bool = True) -> tuple[TracerProvider, DropExporter]:
    """An OTel SDK provider as production runs it (batch processor), exporting to a DropExporter.

    `timer=False`: the processor's worker exports only at shutdown, not every 5 s of wall time. Under callgrind
    the timer made the count depend on how long the run took: a slower run (bigger bodies, a busier machine)
    woke the worker more often, +/-0.5M instructions per call, none of it nbmon's."""
    exporter = DropExporter()
    provider = TracerProvider()
    delay_ms = 5_000 if timer else 10**9
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=100_000, schedule_delay_millis=delay_ms))
    return provider, exporter


def response_body(image_bytes: int, seed: int = 7) -> bytes:
    """A realistic Pro response: thought text, one thought image, the final image, usage metadata."""
    rng = random.Random(seed)
    thought = base64.b64encode(rng.randbytes(image_bytes // 4)).decode()
    final = base64.b64encode(rng.randbytes(image_bytes)).decode()
    body = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "planning the layout", "thought": True},
                        {"inlineData": {"mimeType": "image/png", "data": thought}, "thought": True},
                        {"inlineData": {"mimeType": "image/png", "data": final}, "thoughtSignature": "c2ln"},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 14, "candidatesTokenCount": 1120, "thoughtsTokenCount": 210},
        "modelVersion": MODEL,
        "responseId": "bench",
    }
    return json.dumps(body).encode()


def fake_client(body: bytes) -> Any:
    """A real genai.Client whose HTTP client answers every request in-process with `body`."""
    from google import genai
    from google.genai import types

    try:  # google-genai 3.x sends through httpx2; 2.x through httpx
        import httpx2 as httpx_lib
    except ImportError:
        import httpx as httpx_lib

    def handler(request: Any) -> Any:
        return httpx_lib.Response(200, content=body, headers={"content-type": "application/json"})

    http_client = httpx_lib.Client(transport=httpx_lib.MockTransport(handler))
    return genai.Client(api_key="bench", http_options=types.HttpOptions(httpx_client=http_client))


def image_call(client: Any) -> Callable[[], object]:
    from google.genai import types

    config = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"])
    return lambda: client.models.generate_content(model=MODEL, contents="a banana", config=config)


def time_per_call(call: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n


_ABSENT = object()  # an attribute the class does not have (None is a value)


class MethodSwap:
    """Turns an instrumentation on and off by swapping the class attributes it patches.

    instrument()/uninstrument() rebuild wrappers, recorders and caches each time; toggled around every
    call they would time set-up, not per-call work. This runs instrument() once, notes what it replaced,
    and then swaps those attributes, which is all that instrument() and uninstrument() change in the SDK.
    """

    def __init__(self, classes: list[type], instrument: Callable[[], object], uninstrument: Callable[[], object]):
        before = {(cls, name): value for cls in classes for name, value in vars(cls).items()}
        instrument()
        after = {(cls, name): value for cls in classes for name, value in vars(cls).items()}
        changed = [key for key in {**before, **after} if before.get(key, _ABSENT) is not after.get(key, _ABSENT)]
        self.patched = [(cls, name, after.get((cls, name), _ABSENT)) for cls, name in changed]
        self.originals = [(cls, name, before.get((cls, name), _ABSENT)) for cls, name in changed]
        self._uninstrument = uninstrument
        if not self.patched:
            uninstrument()
            raise SystemExit("instrument() patched nothing: the figures would measure a bare call")
        self.off()

    @staticmethod
    def _apply(state: list[tuple[type, str, object]]) -> None:
        for cls, name, value in state:
            if value is _ABSENT:
                if name in vars(cls):
                    delattr(cls, name)
            else:
                setattr(cls, name, value)

    def on(self) -> None:
        self._apply(self.patched)

    def off(self) -> None:
        self._apply(self.originals)

    def close(self) -> None:
        self.on()  # uninstrument() restores from the instrumented state, as it expects
        self._uninstrument()


@dataclass
class Paired:
    bare_s: float
    instrumented_s: float
    ratio: float  # median of per-pair ratios: each pair ran back to back, so drift cancels
    rounds: int
    min_ratio: float = 0.0  # fastest instrumented round over fastest bare round: what is left without interference


def warm_up_calls(calls: int) -> int:
    """Untimed calls paired_rounds makes on each side first (the instrumented ones count as instrumented)."""
    return max(calls // 10, 3)


def paired_rounds(
    call: Callable[[], object],
    on: Callable[[], None],
    off: Callable[[], None],
    rounds: int,
    calls: int,
    instrumented_call: Callable[[], object] | None = None,
) -> Paired:
    """Alternate bare and instrumented rounds (order flipped every pair) and compare within pairs.

    The instrumented side runs `instrumented_call` when given (else `call`) between on() and off().
    Short rounds (down to one call) with many pairs: this VM's speed drifts by up to 2x over tenths of
    a second, and only a pair timed within a few milliseconds sees the same machine on both sides.
    """
    measured = instrumented_call or call
    warm_up = warm_up_calls(calls)
    on()
    for _ in range(warm_up):
        measured()
    off()
    for _ in range(warm_up):
        call()
    bare: list[float] = []
    inst: list[float] = []
    for i in range(rounds):
        for instrumented in (i % 2 == 0, i % 2 != 0):
            # Both sides set their state right before timing, so both start after the same kind of switch.
            if instrumented:
                on()
                inst.append(time_per_call(measured, calls))
            else:
                off()
                bare.append(time_per_call(call, calls))
    off()
    ratios = [i / b for i, b in zip(inst, bare, strict=True)]
    median_ratio = statistics.median(ratios)
    return Paired(statistics.median(bare), statistics.median(inst), median_ratio, rounds, min(inst) / min(bare))


def table_row(label: str, result: Paired) -> str:
    return (
        f"{label:<42} {result.bare_s * 1e3:9.3f} {result.instrumented_s * 1e3:9.3f} "
        f"{(result.instrumented_s - result.bare_s) * 1e6:9.0f} {result.ratio:7.3f} {result.min_ratio:9.3f}"
    )


TABLE_HEADER = f"{'case':<42} {'bare ms':>9} {'inst ms':>9} {'+us/call':>9} {'ratio':>7} {'min ratio':>9}"
