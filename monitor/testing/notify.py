"""Fake Slack, PagerDuty and generic webhook receivers: real HTTP servers on 127.0.0.1, port 0, in a thread.

They answer the way the real services do (status codes, bodies, Retry-After, PagerDuty's dedup), so the
notifiers, the outbox and the daemon are tested over real sockets without patching our code:

    with FakeSlack() as slack:
        slack.reply_next(429, retry_after=7)          # scripted answers come first, in order
        SlackNotifier("ops", slack.url).send(n)       # -> Delivery(RETRY, retry_after_s=7.0)
        SlackNotifier("ops", slack.url).send(n)       # -> 200 "ok", SENT; slack.accepted == [body]

`received` holds every parsed JSON body in arrival order (None for a body that is not JSON), `accepted` only
those answered with success, `requests` also the path and headers.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Self

from monitor.catalog import builtin_catalog
from monitor.notify.base import Event, Notification

SLACK_ERRORS: Final = {  # api.slack.com changelog 2016-05-17, and the rate-limit docs
    400: "invalid_payload",
    403: "action_prohibited",
    404: "channel_not_found",
    410: "channel_is_archived",
    429: "rate_limited",
    500: "rollup_error",
}
PAGERDUTY_SEVERITIES: Final = frozenset({"critical", "error", "warning", "info"})
PAGERDUTY_ACTIONS: Final = frozenset({"trigger", "acknowledge", "resolve"})


def sample_notification(event: Event = Event.FIRING, **changes: Any) -> Notification:
    """A realistic degraded-mode notification (a fresh id each call); `changes` replace fields."""
    verb = "entered" if event is Event.FIRING else "left"
    model = builtin_catalog().default_primary
    notification = Notification(
        id=str(uuid.uuid4()),
        rule="degraded-mode",
        event=event,
        severity="critical",
        title=f"{model} {verb} degraded mode (degraded-mode)",
        summary="degraded-mode: ratio 42.0% over 1m (126 of 300 requests); threshold 30%. 503 ratio above threshold",
        dedup_key="nbmon/production/degraded-mode",
        at=datetime(2025, 11, 27, 14, 10, tzinfo=UTC),
        since=datetime(2025, 11, 27, 14, 5, tzinfo=UTC),
        model=model,
        figures={"ratio": 0.42, "numerator": 126, "denominator": 300, "window_s": 60, "threshold": 0.3},
        links={"dashboard": "https://grafana.example.com/d/nbmon", "runbook": "https://wiki.example.com/nbmon"},
        override_command='nbmon flag set off --reason "..." --for 30m',
    )
    return replace(notification, **changes)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Request:
    path: str
    headers: Mapping[str, str]
    body: Any  # parsed JSON, or None when the body is not JSON


def _json_reply(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(body), dict(headers or {}), "application/json")


class _Handler(BaseHTTPRequestHandler):
    server: FakeReceiver  # HTTP/1.0 (the default): one request per connection, so stop() never waits on keep-alive

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        self._write(self.server.handle_request_body(Request(self.path, dict(self.headers.items()), body)))

    def do_GET(self) -> None:
        self._write(Reply(405, "method not allowed"))

    def _write(self, reply: Reply) -> None:
        data = reply.body.encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request line holds the webhook path, which is a secret."""


class FakeReceiver(ThreadingHTTPServer):
    """A generic JSON webhook receiver (200 `{"ok": true}`); the base of the fakes below. Serves at once."""

    daemon_threads = True
    path = "/hook"

    def __init__(self, script: Iterable[Reply] = ()) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: list[Reply] = list(script)  # answered first, in order, whatever the request
        self.requests: list[Request] = []
        self.received: list[Any] = []
        self.accepted: list[Any] = []
        self.lock = threading.Lock()
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def url(self) -> str:
        return self.base_url + self.path

    def reply_next(
        self, status: int, *, retry_after: float | None = None, body: str | None = None, **headers: str
    ) -> None:
        """Script one answer; the body defaults to what the real service says for that status."""
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        self.script.append(self.scripted(status, body, headers))

    def scripted(self, status: int, body: str | None, headers: dict[str, str]) -> Reply:
        return Reply(status, body if body is not None else json.dumps({"status": status}), headers, "application/json")

    def handle_request_body(self, request: Request) -> Reply:
        with self.lock:
            self.requests.append(request)
            self.received.append(request.body)
            reply = self.script.pop(0) if self.script else self.answer(request)
            if 200 <= reply.status < 300:
                self.accepted.append(request.body)
            return reply

    def answer(self, request: Request) -> Reply:
        """What the service answers when nothing is scripted (called under `lock`)."""
        if request.path != self.path:
            return _json_reply(404, {"error": "not found"})
        return _json_reply(200, {"ok": True})

    def stop(self) -> None:
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join(timeout=2.0)
        self.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class FakeSlack(FakeReceiver):
    """A Slack incoming webhook: 200 `ok`, 400 `invalid_payload`, 404 `no_service` on any other path."""

    def __init__(self, script: Iterable[Reply] = ()) -> None:
        # A random token per server: tests that look for the URL in logs and details cannot pass by accident.
        self.path = f"/services/T0NBMON00/B0NBMON00/{secrets.token_hex(12)}"
        super().__init__(script)

    def scripted(self, status: int, body: str | None, headers: dict[str, str]) -> Reply:
        return Reply(status, body if body is not None else SLACK_ERRORS.get(status, "error"), headers)

    def answer(self, request: Request) -> Reply:
        if request.path != self.path:
            return Reply(404, "no_service")
        body = request.body
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return Reply(400, "invalid_payload")
        if "blocks" in body and not isinstance(body["blocks"], list):
            return Reply(400, "invalid_blocks")
        return Reply(200, "ok")


@dataclass
class Incident:
    """One PagerDuty alert: opened by a trigger, further triggers with its dedup_key fold into it."""

    dedup_key: str
    summary: str
    severity: str
    status: str = "triggered"  # triggered | acknowledged | resolved
    triggers: int = 1
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.status != "resolved"


def pagerduty_errors(event: Any) -> list[str]:
    """Why the Events API v2 would refuse this event (empty: it is valid)."""
    if not isinstance(event, dict):
        return ["Event object is not a JSON object"]
    errors = []
    key = event.get("routing_key")
    if not isinstance(key, str) or not key:
        errors.append("'routing_key' is missing or blank")
    elif len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in PAGERDUTY_ACTIONS:
        errors.append("'event_action' is missing or invalid")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or not dedup or len(dedup) > 255):
        errors.append("'dedup_key' must be a string of 1 to 255 characters")
    if action in {"acknowledge", "resolve"} and not dedup:
        errors.append("'dedup_key' is missing or blank")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "'payload' is missing or not an object"]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors.append("'payload.summary' is missing or blank")
        elif len(summary) > 1024:
            errors.append("'payload.summary' is longer than 1024 characters")
        if not isinstance(payload.get("source"), str) or not payload["source"].strip():
            errors.append("'payload.source' is missing or blank")
        if payload.get("severity") not in PAGERDUTY_SEVERITIES:
            errors.append("'payload.severity' is invalid (expected critical, error, warning or info)")
        if "timestamp" in payload:
            try:
                datetime.fromisoformat(str(payload["timestamp"]))
            except ValueError:
                errors.append("'payload.timestamp' is not ISO 8601")
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
            errors.append("'payload.custom_details' must be an object")
    links = event.get("links", [])
    if not isinstance(links, list) or not all(isinstance(x, dict) and isinstance(x.get("href"), str) for x in links):
        errors.append("'links' must be a list of objects with 'href'")
    return errors


class FakePagerDuty(FakeReceiver):
    """The Events API v2 at `url` (`.../v2/enqueue`): 202 or 400 with PagerDuty's bodies, and dedup.

    `incidents` maps each dedup_key to every incident it opened, oldest first; only the last can be open.
    A trigger opens one (or folds into the open one), a resolve closes the open one (or is dropped).
    One routing key is modelled: the real service scopes dedup_keys per integration.
    """

    path = "/v2/enqueue"

    def __init__(self, script: Iterable[Reply] = ()) -> None:
        self.incidents: dict[str, list[Incident]] = {}
        super().__init__(script)

    def scripted(self, status: int, body: str | None, headers: dict[str, str]) -> Reply:
        if body is not None:
            return Reply(status, body, headers, "application/json")
        if status == 429:
            throttled = {"status": "throttle event", "message": "Requests for this service are arriving too quickly"}
            return _json_reply(429, throttled, headers)
        return _json_reply(status, {"status": "error", "message": "Internal Server Error"}, headers)

    def open_incidents(self) -> list[Incident]:
        with self.lock:
            return [history[-1] for history in self.incidents.values() if history[-1].open]

    def answer(self, request: Request) -> Reply:
        if request.path != self.path:
            return _json_reply(404, {"status": "error", "message": "Not Found"})
        errors = pagerduty_errors(request.body)
        if errors:
            return _json_reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors})
        event: dict[str, Any] = request.body
        key = event.get("dedup_key") or secrets.token_hex(16)  # PagerDuty generates one when none is given
        history = self.incidents.setdefault(key, [])
        current = history[-1] if history and history[-1].open else None
        action = event["event_action"]
        if action == "trigger" and current is None:
            payload = event["payload"]
            history.append(Incident(key, payload["summary"], payload["severity"], events=[event]))
        elif current is not None:  # ack/resolve of a closed or unknown key are dropped, still with 202
            current.events.append(event)
            if action == "trigger":
                current.triggers += 1
            else:
                current.status = "acknowledged" if action == "acknowledge" else "resolved"
        if not history:
            del self.incidents[key]
        return _json_reply(202, {"status": "success", "message": "Event processed", "dedup_key": key})
