"""One app replica of the fleet tests, as its own process: instrument() patches google-genai once per process, so
three replicas are three processes, as they are in a real fleet.

    python -m tests.fleet.promql_replica SIMULATOR_URL RATE

It instruments the SDK, serves /metrics on a free loopback port (printed as the first line of stdout), and calls
the simulator through the real SDK at RATE calls per second (Pro, Pro, Flash, ...) until stdin closes or SIGTERM.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
import time

from google import genai
from google.genai import types
from prometheus_client import start_http_server

import monitor
from tests.support.constants import FLASH, PRO


def main(simulator_url: str, rate: float) -> None:
    monitor.configure_logging("json", "ERROR")  # stdout carries the port; a log line per call would drown it
    monitor.instrument()
    server, _ = start_http_server(0, addr="127.0.0.1")
    print(server.server_port, flush=True)
    # The test holds our stdin: when it goes away (even killed), so do we.
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=simulator_url))
    config = types.GenerateContentConfig(response_modalities=["IMAGE"])
    due = time.monotonic()
    for model in itertools.cycle((PRO, PRO, FLASH)):
        with contextlib.suppress(Exception):  # the 503s are the signal; the shim has counted them
            client.models.generate_content(model=model, contents="a banana", config=config)
        due += 1 / rate
        time.sleep(max(0.0, due - time.monotonic()))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
