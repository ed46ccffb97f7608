"""An app that is not written in Python, in the demo: a few lines of Node (its built-in fetch) or curl, calling
Gemini through nbmon's proxy once degraded mode is on. The proxy steers it to Flash as the flag says, with no
nbmon code in that app at all."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from dataclasses import dataclass

from monitor.demo.script import PRO
from monitor.wire import ROUTE_HEADER, SERVED_MODEL_HEADER

# What a Node app does: no SDK needed for one call, so no npm install in the demo.
NODE_SCRIPT = """
const [url, key] = process.argv.slice(1);
const body = {contents: [{parts: [{text: "a banana, from Node"}]}], generationConfig: {responseModalities: ["IMAGE"]}};
const r = await fetch(url, {method: "POST", headers: {"x-goog-api-key": key, "content-type": "application/json"},
                            body: JSON.stringify(body)});
const parts = (await r.json()).candidates?.[0]?.content?.parts ?? [];
console.log(JSON.stringify({status: r.status, served: r.headers.get("%s"), route: r.headers.get("%s"),
                            images: parts.filter((p) => p.inlineData && !p.thought).length}));
""" % (SERVED_MODEL_HEADER, ROUTE_HEADER)  # noqa: UP031 - JS braces would all need doubling in an f-string
DEMO_KEY = "demo-key"  # the simulator takes any key; a real app sends its own, which the proxy passes on


@dataclass(frozen=True, slots=True)
class PolyglotCall:
    client: str  # "node" or "curl"
    status: int
    served: str | None
    route: str | None
    images: int


class PolyglotClient:
    """Runs the non-Python call once, in the background; `result` is set when it is done (None: no client)."""

    def __init__(self, proxy_url: str, model: str = PRO) -> None:
        self.url = f"{proxy_url}/v1beta/models/{model}:generateContent"
        self.client = "node" if shutil.which("node") else "curl" if shutil.which("curl") else None
        self.result: PolyglotCall | None = None
        self.error: str | None = None
        self.reported = False  # its answer was shown in the day's events
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def start(self) -> None:
        if self.client is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="nbmon-demo-polyglot", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self.result = self._node() if self.client == "node" else self._curl()
        except (OSError, ValueError, KeyError, subprocess.SubprocessError) as exc:
            self.error = f"{self.client}: {type(exc).__name__}: {exc}"[:300]

    def _node(self) -> PolyglotCall:
        command = ["node", "--input-type=module", "-e", NODE_SCRIPT, self.url, DEMO_KEY]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)  # noqa: S603 - our argv
        found = json.loads(done.stdout.strip().splitlines()[-1])
        return PolyglotCall("node", int(found["status"]), found["served"], found["route"], int(found["images"]))

    def _curl(self) -> PolyglotCall:
        body = json.dumps(
            {
                "contents": [{"parts": [{"text": "a banana, from curl"}]}],
                "generationConfig": {"responseModalities": ["IMAGE"]},
            }
        )
        command = ["curl", "-sS", "--max-time", "30", "-D", "-", "-H", f"x-goog-api-key: {DEMO_KEY}",
                   "-H", "content-type: application/json", "--data", body, self.url]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=35, check=True)  # noqa: S603 - our argv
        head, _, payload = done.stdout.replace("\r\n", "\n").partition("\n\n")
        lines = head.splitlines()
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        parts = json.loads(payload).get("candidates", [{}])[0].get("content", {}).get("parts", [])
        images = sum(1 for p in parts if p.get("inlineData") and not p.get("thought"))
        status = int(lines[0].split()[1])
        return PolyglotCall("curl", status, headers.get(SERVED_MODEL_HEADER), headers.get(ROUTE_HEADER), images)


def polyglot_text(client: PolyglotClient) -> str:
    """One line for the events and the summary."""
    if client.client is None:
        return "no node or curl on this machine: the non-Python client was skipped"
    if client.result is None:
        return f"{client.client} through the proxy failed: {client.error or 'it did not finish'}"
    call = client.result
    return (
        f"{call.client} through the proxy: HTTP {call.status}, {call.images} image(s) from {call.served} "
        f"(x-nbmon-route: {call.route}), steered by the flag with no nbmon code in that app"
    )
