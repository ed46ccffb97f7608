"""The compose stack's app: an instrumented load loop against the Gemini simulator that follows nbmon's flag.

What an app using nbmon looks like: monitor.instrument() once, /metrics for the sidecar to scrape, and an
ImageGenerator that reads the sidecar's degraded-mode flag over OFREP. It runs in the nbmon image
(`python /opt/app/app.py`) and is configured by the environment; SIGTERM stops it.
"""

from __future__ import annotations

import os
import signal
import threading

from google import genai
from google.genai import types
from prometheus_client import start_http_server

import monitor

GEMINI_URL = os.environ.get("APP_GEMINI_URL", "http://gemini-sim:8089")
FLAG_URL = os.environ.get("NBMON_URL", "http://127.0.0.1:8016")  # the sidecar, as `nbmon flag` reads it
METRICS_HOST = os.environ.get("APP_METRICS_HOST", "0.0.0.0")  # noqa: S104 - Prometheus scrapes from another container
METRICS_PORT = int(os.environ.get("APP_METRICS_PORT", "9464"))
WORKERS = int(os.environ.get("APP_WORKERS", "4"))
# Waits of seconds, not the production minutes: a small demo must keep the rules above their min_volume.
POLICY = monitor.RetryPolicy(
    max_attempts=3, initial_backoff_s=1, max_backoff_s=4, rate_limit_default_wait_s=2, deadline_s=60, min_call_s=1
)


def work(generator: monitor.ImageGenerator, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            generator.generate("a banana in a tuxedo")
        except Exception:  # noqa: BLE001, S112 - every failure is counted by nbmon; the load goes on
            continue


def main() -> None:
    monitor.configure_logging("json", os.environ.get("APP_LOG_LEVEL", "ERROR"))
    monitor.instrument()
    server, _thread = start_http_server(METRICS_PORT, addr=METRICS_HOST)
    client = genai.Client(api_key="demo-key", http_options=types.HttpOptions(base_url=GEMINI_URL))
    flag = monitor.OfrepFlagSource(FLAG_URL)
    generator = monitor.ImageGenerator(client, policy=POLICY, flag_source=flag, canary_share=0.2)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    signal.signal(signal.SIGINT, lambda _signum, _frame: stop.set())
    workers = [threading.Thread(target=work, args=(generator, stop), daemon=True) for _ in range(WORKERS)]
    for worker in workers:
        worker.start()
    print(f"app: {WORKERS} workers -> {GEMINI_URL}, flag {FLAG_URL}, metrics :{server.server_port}", flush=True)
    stop.wait()
    server.shutdown()


if __name__ == "__main__":
    main()
