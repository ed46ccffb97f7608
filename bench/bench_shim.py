"""Instrumented versus bare google-genai call against an in-process fake transport.

Rounds alternate (bare, instrumented, bare, ...) so machine noise hits both sides alike; the figure
that matters is the ratio of medians, not the absolute time. Not a test: run `make bench`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable

import httpx2
import structlog
from google import genai
from google.genai import types
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry

import monitor

MODEL = "gemini-3-pro-image-preview"


class _DropExporter(SpanExporter):
    def export(self, spans: object) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def response_body(image_bytes: int, seed: int = 7) -> bytes:
    """A realistic Pro response: thought text, one thought image, the final image, usage."""
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


def make_client(body: bytes) -> genai.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "application/json"})

    transport = httpx2.MockTransport(handler)
    return genai.Client(
        api_key="bench", http_options=types.HttpOptions(httpx_client=httpx2.Client(transport=transport))
    )


def time_calls(call: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n


def run(image_bytes: int, rounds: int, calls: int) -> tuple[float, float]:
    client = make_client(response_body(image_bytes))
    config = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"])

    def call() -> object:
        return client.models.generate_content(model=MODEL, contents="a banana", config=config)

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_DropExporter()))
    registry = CollectorRegistry()
    for _ in range(3):  # warm up both paths
        call()
    bare: list[float] = []
    instrumented: list[float] = []
    for _ in range(rounds):
        bare.append(time_calls(call, calls))
        monitor.instrument(registry=registry, tracer_provider=provider)
        instrumented.append(time_calls(call, calls))
        monitor.uninstrument()
    provider.shutdown()
    return statistics.median(bare), statistics.median(instrumented)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200, help="calls per round (1.5 MB case uses a fifth)")
    args = parser.parse_args()
    # JSON logs to /dev/null: rendering and the write are counted, a terminal is not.
    monitor.configure_logging("json", stream=open(os.devnull, "w"))  # noqa: SIM115 - lives for the run
    print(f"google-genai {genai.__version__}, {args.rounds} alternating rounds, median per call")
    print(f"{'response':>10} {'bare ms':>9} {'nbmon ms':>9} {'ratio':>6}")
    for label, size, calls in (("~50 KB", 37_000, args.calls), ("~1.5 MB", 1_100_000, max(args.calls // 5, 10))):
        bare, inst = run(size, args.rounds, calls)
        print(f"{label:>10} {bare * 1e3:9.3f} {inst * 1e3:9.3f} {inst / bare:6.3f}")
    structlog.reset_defaults()
    return 0


if __name__ == "__main__":
    sys.exit(main())
