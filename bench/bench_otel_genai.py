"""The OpenTelemetry google-genai instrumentation versus a bare call, on the same fake as bench_shim.py.

That instrumentation supports google-genai <3 only, so this runs in a second virtualenv with the
newest google-genai 2.x, not in the project's .venv. `make bench` builds it; by hand:

    python3 -m venv bench/.venv-otel
    bench/.venv-otel/bin/pip install -r bench/requirements-otel.txt
    bench/.venv-otel/bin/python bench/bench_otel_genai.py

Same method as bench_shim.py: bare and instrumented calls alternate one by one, the instrumentation
switched by swapping the SDK methods its instrument() patched (MethodSwap), and the ratio is the
median of per-pair ratios.
Spans go through an SDK BatchSpanProcessor to an exporter that drops them, metrics into an SDK
MeterProvider with an in-memory reader; message content capture stays off (its default).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import (
    SIZES,
    TABLE_HEADER,
    DropExporter,
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
from opentelemetry.instrumentation.google_genai import GoogleGenAiSdkInstrumentor
from opentelemetry.instrumentation.google_genai import __version__ as instrumentation_version
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

DURATION_METRIC = "gen_ai.client.operation.duration"


def _recorded_operations(reader: InMemoryMetricReader) -> int:
    """How many calls the instrumentation's duration histogram has counted (cumulative)."""
    data = reader.get_metrics_data()
    if data is None:
        return 0
    return sum(
        point.count
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == DURATION_METRIC
        for point in metric.data.data_points
        if isinstance(point, HistogramDataPoint)
    )


def _check(ok: bool, message: str) -> None:
    # Not assert: `python -O` would strip it and let a non-instrumenting set-up print a ratio of ~1.
    if not ok:
        raise SystemExit(f"bench_otel_genai: {message}")


def _expect_telemetry(
    calls: int, exporter: DropExporter, reader: InMemoryMetricReader, provider: TracerProvider
) -> None:
    """Exactly `calls` spans and duration-metric points so far: one each per instrumented call."""
    provider.force_flush()
    # No span at all most likely means instrument() rejected this google-genai (see its log line).
    hint = "; is this bench/.venv-otel with google-genai <3?" if exporter.spans == 0 else ""
    _check(exporter.spans == calls, f"expected {calls} spans, got {exporter.spans}{hint}")
    operations = _recorded_operations(reader)
    _check(operations == calls, f"expected {DURATION_METRIC} to count {calls} calls, got {operations}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=400, help="bare/instrumented pairs at ~50 KB (half at ~1.5 MB)")
    parser.add_argument("--calls", type=int, default=1, help="calls per round (default 1)")
    args = parser.parse_args()
    provider, exporter = dropping_tracer_provider()
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    # A singleton (BaseInstrumentor): every instrument() rebuilds its wrappers, uninstrument() restores
    # the SDK's original methods. Its per-call events go to the global logger provider, a no-op here.
    instrumentor = GoogleGenAiSdkInstrumentor()

    def on() -> None:
        instrumentor.instrument(tracer_provider=provider, meter_provider=meter_provider)

    off = instrumentor.uninstrument
    print(
        f"google-genai {genai.__version__}, opentelemetry-instrumentation-google-genai {instrumentation_version}, "
        f"{args.rounds} paired rounds of {args.calls} call(s) (half at ~1.5 MB), per call (median)"
    )
    print(TABLE_HEADER)
    instrumented = 0
    for size_label, size in SIZES:
        client = fake_client(response_body(size))
        call = image_call(client)
        rounds = args.rounds if size < 100_000 else max(args.rounds // 2, 5)
        # Before timing, one instrumented call must yield a span and a metric point: instrument() only
        # logs an error and does nothing when it rejects the installed google-genai (>=3).
        on()
        call()
        off()
        instrumented += 1
        _expect_telemetry(instrumented, exporter, reader, provider)
        swap = MethodSwap([models.Models, models.AsyncModels, _api_client.BaseApiClient], on, off)
        result = paired_rounds(call, swap.on, swap.off, rounds, args.calls)
        swap.close()
        # After: every instrumented call (warm-up included) and no bare one made a span.
        instrumented += rounds * args.calls + warm_up_calls(args.calls)
        _expect_telemetry(instrumented, exporter, reader, provider)
        print(table_row(f"{size_label} OTel google-genai instr.", result))
    provider.shutdown()
    meter_provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
