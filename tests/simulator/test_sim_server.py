"""Server behaviour over real HTTP: control endpoints, auth, routing, SSE framing, latency, seeding, stop()."""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from monitor.simulator import SimulatorServer
from tests.support.constants import FLASH, PRO

KEY = {"x-goog-api-key": "sekrit-123"}
BODY: dict[str, Any] = {
    "contents": [{"parts": [{"text": "a cat"}]}],
    "generationConfig": {"responseModalities": ["IMAGE"]},
}
GEN = f"/v1beta/models/{PRO}:generateContent"
STREAM = f"/v1beta/models/{PRO}:streamGenerateContent?alt=sse"


@pytest.fixture
def web(sim: SimulatorServer) -> Any:
    with httpx.Client(base_url=sim.url, timeout=10) as client:
        yield client


def sse_events(resp: httpx.Response) -> list[dict[str, Any]]:
    assert resp.text.endswith("\r\n\r\n")
    events = resp.text.split("\r\n\r\n")[:-1]
    assert all(e.startswith("data: ") for e in events)
    return [json.loads(e.removeprefix("data: ")) for e in events]


def test_healthz(web: httpx.Client) -> None:
    resp = web.get("/healthz")
    assert (resp.status_code, resp.json()) == (200, {"status": "ok"})


def test_profile_put_get_roundtrip_changes_outcomes(web: httpx.Client) -> None:
    assert web.get("/_sim/profile").json() == {"kind": "fixed", "outcome": "ok", "seed": 0}
    spec = {"kind": "sequence", "outcomes": ["overloaded", "rate_limited"], "then": "ok", "seed": 4}
    put = web.put("/_sim/profile", json=spec)
    assert (put.status_code, put.json()) == (200, spec)
    assert web.get("/_sim/profile").json() == spec
    assert [web.post(GEN, json=BODY, headers=KEY).status_code for _ in range(3)] == [503, 429, 200]
    assert web.put("/_sim/profile", json="fixed:server_error").json()["outcome"] == "server_error"
    assert web.post(GEN, json=BODY, headers=KEY).status_code == 500


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"kind": "mix", "weights": {"overloaded": 2}}', "profile.weights.overloaded: must be between 0 and 1"),
        (b'{"kind": "mix"', "Expecting"),
        (b"[1, 2]", "profile: the body must be a JSON object or a profile string"),
        (b'"fixed:meltdown"', "profile.outcome: unknown outcome 'meltdown'"),
    ],
)
def test_bad_profile_is_a_400_with_the_reason(web: httpx.Client, body: bytes, reason: str) -> None:
    resp = web.put("/_sim/profile", content=body)
    assert resp.status_code == 400
    assert resp.json()["error"]["message"].startswith(reason)
    assert web.get("/_sim/profile").json()["kind"] == "fixed"  # unchanged


def test_stats_and_reset(sim: SimulatorServer, web: httpx.Client) -> None:
    sim.set_profile("sequence:overloaded,ok")
    web.post(GEN, json=BODY, headers=KEY)
    web.post(f"/v1beta/models/{FLASH}:generateContent", json=BODY, headers=KEY)
    web.post(GEN, json=BODY)  # no key
    stats = web.get("/_sim/stats").json()
    assert stats["requests"] == 3
    assert stats["by_outcome"] == {"overloaded": 1, "ok": 1}
    assert stats["by_model"] == {PRO: 2, FLASH: 1}
    assert stats["by_status"] == {"503": 1, "200": 1, "403": 1}
    assert stats["rejected"] == {"unauthenticated": 1}
    assert stats["profile"] == "sequence overloaded,ok then ok"
    assert web.post("/_sim/reset").json() == {"status": "reset"}
    assert web.get("/_sim/stats").json()["requests"] == 0
    assert web.post(GEN, json=BODY, headers=KEY).status_code == 503  # the script starts over


def test_missing_key_is_403_in_the_real_shape_and_never_echoed(web: httpx.Client, caplog: Any) -> None:
    resp = web.post(GEN, json=BODY)
    assert resp.status_code == 403
    error = resp.json()["error"]
    assert error["status"] == "PERMISSION_DENIED"
    assert error["message"].startswith("Method doesn't allow unregistered callers")
    caplog.set_level(logging.DEBUG, logger="monitor.simulator")
    for url in (f"{GEN}?key=sekrit-123", GEN):
        ok = web.post(url, json=BODY, headers={} if "key=" in url else KEY)
        assert ok.status_code == 200 and "sekrit" not in ok.text
    assert "sekrit" not in caplog.text and "key=REDACTED" in caplog.text


def test_bearer_token_and_vertex_paths(web: httpx.Client) -> None:
    vertex = f"/v1beta1/projects/p/locations/us-central1/publishers/google/models/{PRO}:generateContent"
    assert web.post(vertex, json=BODY, headers={"Authorization": "Bearer t"}).status_code == 200
    missing = web.post(vertex, json=BODY)
    assert (missing.status_code, missing.json()["error"]["status"]) == (401, "UNAUTHENTICATED")


def test_require_key_false() -> None:
    with SimulatorServer(require_key=False) as sim:
        assert httpx.post(sim.url + GEN, json=BODY).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/models/{PRO}:generateContent",
        f"/v1alpha/models/{PRO}:generateContent",
        f"/v1beta1/publishers/google/models/{PRO}:generateContent",
        f"/v1/projects/p/locations/global/publishers/google/models/{PRO}:generateContent",
    ],
)
def test_api_versions_and_vertex_forms(web: httpx.Client, path: str) -> None:
    resp = web.post(path, json=BODY, headers=KEY)
    assert resp.status_code == 200 and resp.json()["modelVersion"] == PRO


def test_malformed_and_invalid_requests(web: httpx.Client) -> None:
    bad = web.post(GEN, content=b"{not json", headers={**KEY, "content-type": "application/json"})
    assert bad.status_code == 400
    assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert bad.json()["error"]["message"].startswith("Invalid JSON payload received.")
    no_contents = web.post(GEN, json={"generationConfig": {}}, headers=KEY)
    assert no_contents.status_code == 400 and "contents is not specified" in no_contents.json()["error"]["message"]
    assert web.get("/_sim/stats").json()["rejected"] == {"malformed": 1, "invalid": 1}


def test_unknown_path_and_wrong_method(web: httpx.Client) -> None:
    missing = web.post("/v1beta/models/x:countTokens", json=BODY, headers=KEY)
    assert (missing.status_code, missing.json()["error"]["status"]) == (404, "NOT_FOUND")
    assert web.get("/nope").status_code == 404
    assert web.get(GEN).status_code == 405
    assert web.delete("/_sim/profile").status_code == 405


def test_sse_framing(web: httpx.Client) -> None:
    resp = web.post(STREAM, json=BODY, headers=KEY)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/event-stream"
    events = sse_events(resp)
    assert len(events) == 5
    assert all(e["responseId"] == events[0]["responseId"] for e in events)
    assert "finishReason" not in events[0]["candidates"][0] and events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "usageMetadata" in events[-1] and "usageMetadata" not in events[0]


def test_stream_error_event_after_thought_chunks(web: httpx.Client) -> None:
    resp = web.post(STREAM, json=BODY, headers={**KEY, "x-nbmon-sim-outcome": "stream_error"})
    assert resp.status_code == 200
    events = sse_events(resp)
    assert events[-1] == {
        "error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}
    }
    assert len(events) == 4
    assert all(p["thought"] for e in events[:-1] for p in e["candidates"][0]["content"]["parts"])


def test_stream_without_alt_sse_is_a_json_array(web: httpx.Client) -> None:
    resp = web.post(f"/v1beta/models/{FLASH}:streamGenerateContent", json=BODY, headers=KEY)
    chunks = resp.json()
    assert isinstance(chunks, list) and len(chunks) == 2
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_per_model_latency() -> None:
    with SimulatorServer(latency={"default": 0.0, "pro": 1.0}) as sim, httpx.Client(base_url=sim.url) as web:
        started = time.monotonic()
        web.post(f"/v1beta/models/{FLASH}:generateContent", json=BODY, headers=KEY)
        flash = time.monotonic() - started
        started = time.monotonic()
        web.post(GEN, json=BODY, headers=KEY)
        pro = time.monotonic() - started
    # The lower bound is the simulator's own sleep (1 s, -20% jitter): a slow machine cannot break it.
    assert pro >= 0.8
    assert flash < pro - 0.5


def test_same_seed_same_outcomes_and_ids_over_http() -> None:
    def session(seed: int) -> list[tuple[int, str | None]]:
        with SimulatorServer(profile="mix:overloaded=0.5", seed=seed) as sim, httpx.Client(base_url=sim.url) as web:
            replies = [web.post(GEN, json=BODY, headers=KEY) for _ in range(12)]
        return [(r.status_code, r.json().get("responseId")) for r in replies]

    first = session(11)
    assert first == session(11)
    assert first != session(12)
    assert {code for code, _ in first} == {200, 503}


def test_scenario_phases_follow_the_injected_clock() -> None:
    now = [100.0]
    profile = {"kind": "scenario", "phases": [{"outcome": "ok", "seconds": 30}, {"outcome": "overloaded"}]}
    with SimulatorServer(profile=profile, clock=lambda: now[0]) as sim, httpx.Client(base_url=sim.url) as web:
        assert web.post(GEN, json=BODY, headers=KEY).status_code == 200
        now[0] += 31
        assert web.post(GEN, json=BODY, headers=KEY).status_code == 503
        sim.reset()
        assert web.post(GEN, json=BODY, headers=KEY).status_code == 200


def test_concurrent_requests(sim: SimulatorServer) -> None:
    with httpx.Client(base_url=sim.url) as web, ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: web.post(GEN, json=BODY, headers=KEY).status_code, range(24)))
    assert codes == [200] * 24
    assert sim.stats()["requests"] == 24


def test_stop_is_prompt_even_with_a_slow_request_in_flight() -> None:
    sim = SimulatorServer(profile="fixed:slow", slow_seconds=30).start()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(sim.url + GEN, json=BODY, headers=KEY, timeout=10)
        except httpx.HTTPError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.2)
    url = sim.url
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 3.0  # the slow request in flight does not hold the stop
    caller.join(5)
    assert not caller.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/healthz")
    assert not sim.running


def test_large_images_and_jpeg_option() -> None:
    with SimulatorServer(image_bytes=200_000, image_format="jpeg") as sim:
        body = httpx.post(sim.url + GEN, json=BODY, headers=KEY).json()
    final = body["candidates"][0]["content"]["parts"][-2]["inlineData"]
    assert final["mimeType"] == "image/jpeg"
    size = len(final["data"]) * 3 // 4
    assert 0.98 * 200_000 <= size <= 1.02 * 200_000


def test_bad_server_options_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="image_format"):
        SimulatorServer(image_format="gif")
    with pytest.raises(ValueError, match=r"latency\.pro: must be >= 0"):
        SimulatorServer(latency={"pro": -1})


def test_chunked_request_body(web: httpx.Client) -> None:
    resp = web.post(GEN, content=iter([b'{"contents": [{"parts": ', b'[{"text": "a cat"}]}]}']), headers=KEY)
    assert resp.status_code == 200
    assert web.post(GEN, json=BODY, headers=KEY).status_code == 200  # the keep-alive connection is still in sync


def test_thought_images_option() -> None:
    with SimulatorServer(thought_images=0) as sim, httpx.Client(base_url=sim.url) as web:
        parts = web.post(GEN, json=BODY, headers=KEY).json()["candidates"][0]["content"]["parts"]
        assert [("inlineData" in p, bool(p.get("thought"))) for p in parts] == [
            (False, True),
            (True, False),
            (False, False),
        ]
        only = web.post(GEN, json=BODY, headers={**KEY, "x-nbmon-sim-outcome": "thought_only"}).json()
        assert [p.get("thought") for p in only["candidates"][0]["content"]["parts"]] == [True, True]


def test_hourly_profile_reads_the_injected_wall_clock() -> None:
    def codes(hour: int) -> set[int]:
        wall = datetime(2026, 3, 2, hour, 0, tzinfo=UTC)
        with (
            SimulatorServer(profile="hourly:peak=1,offpeak=0", wall_clock=lambda: wall) as sim,
            httpx.Client(base_url=sim.url) as web,
        ):
            return {web.post(GEN, json=BODY, headers=KEY).status_code for _ in range(5)}

    assert codes(12) == {503}
    assert codes(3) == {200}
