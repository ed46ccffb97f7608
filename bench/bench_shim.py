"""nbmon's shim versus a bare google-genai call, against an in-process fake transport.

Bare and instrumented calls alternate one by one (rounds of one call, hundreds of pairs) and the ratio
is the median of per-pair ratios, so machine noise hits both sides alike: the ratio holds, absolute
times do not. Instrumentation is switched by swapping the SDK methods instrument() patched (MethodSwap),
so no call times nbmon's set-up. Not a test: run `make bench`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import structlog
from _common import (
    MODEL,
    SIZES,
    TABLE_HEADER,
    MethodSwap,
    dropping_tracer_provider,
    fake_client,
    image_call,
    paired_rounds,
    response_body,
    table_row,
    warm_up_calls,
)
from google import genai
from google.genai import _api_client, models
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Tracer
from prometheus_client import CollectorRegistry

import monitor

PATCHED_CLASSES = [models.Models, models.AsyncModels, _api_client.BaseApiClient]


def span_replay(call: Callable[[], object], tracer: Tracer) -> Callable[[], None]:
    """The bare call plus, by hand, a span with the attributes and events nbmon's span carries: the OTel SDK's price."""
    exporter = InMemorySpanExporter()
    probe = TracerProvider()
    probe.add_span_processor(SimpleSpanProcessor(exporter))
    monitor.instrument(registry=CollectorRegistry(), tracer_provider=probe)
    call()
    monitor.uninstrument()
    (span,) = exporter.get_finished_spans()
    name, attributes = span.name, dict(span.attributes or {})
    events = [(event.name, dict(event.attributes or {})) for event in span.events]

    def replay() -> None:
        call()
        replayed = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        for event_name, event_attributes in events:
            replayed.add_event(event_name, event_attributes)
        replayed.end()

    return replay


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=400, help="bare/instrumented pairs at ~50 KB (half at ~1.5 MB)")
    parser.add_argument("--calls", type=int, default=1, help="calls per round (default 1)")
    args = parser.parse_args()
    # JSON logs to /dev/null: rendering and the write are counted, a terminal is not.
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives for the run
    monitor.configure_logging("json", stream=devnull)
    provider, _ = dropping_tracer_provider()
    setups = {
        "metrics + logs + OTel SDK spans": {"tracer_provider": provider},
        # No SDK: the OTel API's global default (a proxy to a no-op), what an app without an SDK has.
        "metrics + logs, no OTel SDK": {},
    }
    size_kb = {label: len(response_body(size)) / 1024 for label, size in SIZES}
    sizes = ", ".join(f"{label} = {kb:,.0f} KiB" for label, kb in size_kb.items())
    print(
        f"google-genai {genai.__version__}, {args.rounds} paired rounds of {args.calls} call(s) (half at ~1.5 MB), "
        f"per call (median); responses: {sizes}"
    )
    print(TABLE_HEADER)
    for size_label, size in SIZES:
        client = fake_client(response_body(size))
        call = image_call(client)
        rounds = args.rounds if size < 100_000 else max(args.rounds // 2, 5)
        for setup_label, kwargs in setups.items():
            registry = CollectorRegistry()

            def instrument(kwargs: dict[str, object] = kwargs, registry: CollectorRegistry = registry) -> None:
                if not monitor.instrument(registry=registry, **kwargs):  # type: ignore[arg-type]
                    raise SystemExit("instrument() refused: the figures would measure a bare call")

            swap = MethodSwap(PATCHED_CLASSES, instrument, monitor.uninstrument)
            result = paired_rounds(call, swap.on, swap.off, rounds, args.calls)
            swap.close()
            # Every instrumented call (warm-up included) and no bare one was counted: the swap did switch.
            counted = registry.get_sample_value("nbmon_generations_total", {"model": MODEL, "error_class": "ok"})
            if counted != rounds * args.calls + warm_up_calls(args.calls):
                raise SystemExit(
                    f"expected {rounds * args.calls + warm_up_calls(args.calls)} calls counted, got {counted}"
                )
            # No bar here: issue #16 compares the +us/call column with bench_otel_genai.py's (at most a third).
            print(table_row(f"{size_label} {setup_label}", result))
        # Not nbmon's work: what the OTel SDK charges for a span like ours, with nbmon off.
        replay = span_replay(call, provider.get_tracer("bench"))
        result = paired_rounds(call, lambda: None, lambda: None, rounds, args.calls, instrumented_call=replay)
        print(f"{table_row(f'{size_label} OTel SDK span alone, no nbmon', result)}  (the SDK's share of the row above)")
    provider.shutdown()
    structlog.reset_defaults()
    devnull.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
