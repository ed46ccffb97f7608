"""A compressed hour of a busy sidecar: is `nbmon run` flat? (issue #15: no unbounded memory, holds on time).

`nbmon run` runs as its own process (so its RSS and threads are its own), scraping an app whose /metrics churns:
2,000 model labels that change on every scrape (the case that grew RSS from 117 to 295 MB and evaluations from
1 ms to 235 ms), beside the real series of a 503 storm that comes and goes. Meanwhile 200 OFREP clients poll the
flag, and an operator sets and clears an override every few seconds. Time is compressed 30x (scrape and evaluation
every 0.5 s instead of 15 s), so the default 2 minutes play an hour of ticks.

Every 10 s it samples the daemon's RSS and thread count (/proc) and the mean evaluation time since the last sample
(its nbmon_evaluation_duration_seconds). It ends with the figures side by side: the last third against the first
(after a warm-up), and says whether RSS stays within 10%, evaluation time flat and threads constant.

    python bench/bench_soak.py [--minutes 2] [--clients 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp

TOKEN = "soak-admin-token-0123456789"
PRO = "gemini-3-pro-image"


class ChurningApp:
    """An app's /metrics: real series, plus 2,000 model labels that change every scrape."""

    def __init__(self) -> None:
        self.scrapes = 0
        self._lock = threading.Lock()
        self._ok = self._fail = 0.0
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = app.exposition().encode()
                self.send_response(200)
                self.send_header("content-type", "text/plain; version=0.0.4")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"

    def exposition(self) -> str:
        with self._lock:
            self.scrapes += 1
            n = self.scrapes
            storm = (n // 120) % 2 == 1  # a minute of storm every other minute (compressed)
            self._fail += 40 if storm else 2
            self._ok += 60 if storm else 98
            lines = ["# TYPE nbmon_requests counter"]
            lines.append(f'nbmon_requests_total{{model="{PRO}",code="200",error_class="ok"}} {self._ok}')
            lines.append(f'nbmon_requests_total{{model="{PRO}",code="503",error_class="overloaded"}} {self._fail}')
            lines.extend(
                f'nbmon_requests_total{{model="churn-{n}-{i}",code="503",error_class="overloaded"}} {n}'
                for i in range(2000)
            )
            return "\n".join(lines) + "\n"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_daemon(workdir: Path, target: str) -> tuple[subprocess.Popen[str], str]:
    config = workdir / "nbmon.toml"
    config.write_text(
        f"""
[listen]
port = 0
[source]
targets = ["{target}"]
interval = "0.5s"
[evaluation]
interval = "0.5s"
[state]
path = "{workdir / "state.json"}"
[admin]
token = "{TOKEN}"
[log]
level = "WARNING"
[rules.degraded-mode]
window_s = "2s"
hold_s = "10s"
recovery_hold_s = "20s"
probe_after_s = "20s"
"""
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NBMON_LOG_LEVEL": "INFO"},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"nbmon.daemon.listening"' in line:
            url = json.loads(line)["url"]
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
            return proc, url
    raise SystemExit(f"nbmon run did not start (exit {proc.wait()})")


def proc_status(pid: int) -> tuple[float, int]:
    """(RSS in MiB, threads) of a process, from /proc."""
    text = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) / 1024  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    return rss, threads


def histogram(text: str, name: str) -> tuple[float, float]:
    total = re.search(rf"^{name}_sum (\S+)$", text, re.M)
    count = re.search(rf"^{name}_count (\S+)$", text, re.M)
    return (float(total.group(1)) if total else 0.0), (float(count.group(1)) if count else 0.0)


async def client(session: aiohttp.ClientSession, url: str, stop: asyncio.Event, counts: dict[str, int]) -> None:
    body = {"context": {"targetingKey": "soak"}}
    while not stop.is_set():
        try:
            async with session.post(f"{url}/ofrep/v1/evaluate/flags/degraded-mode", json=body) as response:
                await response.read()
                counts[str(response.status)] = counts.get(str(response.status), 0) + 1
        except aiohttp.ClientError as error:
            counts[type(error).__name__] = counts.get(type(error).__name__, 0) + 1
        await asyncio.sleep(1.0)


async def operator(session: aiohttp.ClientSession, url: str, stop: asyncio.Event, counts: dict[str, int]) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"}
    while not stop.is_set():
        for method, body in (("POST", {"value": True, "reason": "soak", "expires_in": "1m"}), ("DELETE", None)):
            async with session.request(method, f"{url}/v1/override", json=body, headers=headers) as response:
                await response.read()
                counts[f"override {response.status}"] = counts.get(f"override {response.status}", 0) + 1
            await asyncio.sleep(2.5)


async def soak(url: str, pid: int, seconds: float, clients: int) -> list[tuple[float, float, int, float]]:
    stop = asyncio.Event()
    counts: dict[str, int] = {}
    samples: list[tuple[float, float, int, float]] = []
    connector = aiohttp.TCPConnector(limit=clients + 10)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        tasks = [asyncio.create_task(client(session, url, stop, counts)) for _ in range(clients)]
        tasks.append(asyncio.create_task(operator(session, url, stop, counts)))
        started = time.monotonic()
        last_sum = last_count = 0.0
        while (elapsed := time.monotonic() - started) < seconds:
            await asyncio.sleep(10)
            async with session.get(f"{url}/metrics") as response:
                text = await response.text()
            total, count = histogram(text, "nbmon_evaluation_duration_seconds")
            mean_ms = 1000 * (total - last_sum) / max(count - last_count, 1)
            last_sum, last_count = total, count
            rss, threads = proc_status(pid)
            samples.append((elapsed + 10, rss, threads, mean_ms))
            series = sum(1 for line in text.splitlines() if line.startswith("nbmon_error_ratio{"))
            print(
                f"  t={elapsed + 10:5.0f}s  rss {rss:6.1f} MiB  threads {threads:3d}  evaluation {mean_ms:6.2f} ms"
                f"  error_ratio series {series}  /metrics {len(text) / 1024:.0f} KiB",
                flush=True,
            )
        stop.set()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
    print(f"  requests: {dict(sorted(counts.items()))}")
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=2.0, help="wall minutes (30x: 2 minutes = one hour of ticks)")
    parser.add_argument("--clients", type=int, default=200)
    args = parser.parse_args()
    app = ChurningApp()
    with tempfile.TemporaryDirectory(prefix="nbmon-soak-") as tmp:
        proc, url = start_daemon(Path(tmp), app.url)
        try:
            print(f"soak: nbmon run at {url}, {args.clients} OFREP clients, 2,000 churning model labels per scrape")
            samples = asyncio.run(soak(url, proc.pid, args.minutes * 60, args.clients))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            app.close()
    warm = samples[len(samples) // 3 :]  # after a warm-up third
    third = max(len(warm) // 2, 1)
    first, last = warm[:third], warm[-third:]
    rss = (statistics.mean(s[1] for s in first), statistics.mean(s[1] for s in last))
    ev = (statistics.mean(s[3] for s in first), statistics.mean(s[3] for s in last))
    threads = ({s[2] for s in first}, {s[2] for s in last})
    print(f"scrapes served: {app.scrapes:,}")
    flat = rss[1] <= 1.10 * rss[0]
    print(f"RSS        {rss[0]:.1f} -> {rss[1]:.1f} MiB   ratio {rss[1] / rss[0]:.3f}   (flat within 10%: {flat})")
    print(f"evaluation {ev[0]:.2f} -> {ev[1]:.2f} ms    ratio {ev[1] / max(ev[0], 1e-9):.2f}")
    print(f"threads    {sorted(threads[0])} -> {sorted(threads[1])}   (constant: {max(threads[1]) <= max(threads[0])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
