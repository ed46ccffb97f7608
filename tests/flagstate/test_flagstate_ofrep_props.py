"""Properties of the OFREP router and the JSON nesting check: any method, path and body gives an OFREP answer
(or None for a path that is not OFREP's), never an exception; the nesting check agrees with a plain count."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.flagstate import Decision, FlagState, Models
from monitor.flagstate.ofrep import dispatch, json_nesting_error
from monitor.wire import OFREP_FLAGS_PATH
from tests.support.constants import FLASH, PRO

MODELS = Models(primary=PRO, fallback=FLASH)
DECISION: Decision = FlagState.initial(datetime(2026, 1, 15, tzinfo=UTC)).effective(datetime(2026, 1, 16, tzinfo=UTC))
UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
FAST = settings(max_examples=300, deadline=None)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=30,
)
bodies = st.one_of(
    st.none(),
    st.binary(max_size=120),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries({"context": json_values}).map(lambda value: json.dumps(value).encode()),
    st.integers(0, 300).map(lambda n: b"[" * n + b"]" * n),
    st.integers(0, 300).map(lambda n: b'{"context":' * n + b"{}" + b"}" * n),
)
paths = st.one_of(
    st.sampled_from([OFREP_FLAGS_PATH, f"{OFREP_FLAGS_PATH}/", "/ofrep/v1/evaluate/fl%61gs", "/metrics"]),
    st.tuples(
        st.sampled_from([f"{OFREP_FLAGS_PATH}/", OFREP_FLAGS_PATH, "/ofrep/", "/"]),
        st.text(max_size=30),
        st.sampled_from(["", "?x=1", "?", "#frag"]),
    ).map(lambda parts: parts[0] + quote(parts[1], safe="/%-._~") + parts[2]),
    st.text(max_size=60),
)
methods = st.sampled_from(["POST", "GET", "HEAD", "PUT", "DELETE", "PATCH", "post", "OPTIONS"])


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


@FAST
@given(methods, paths, bodies, st.none() | st.text(max_size=40))
def test_dispatch_always_answers_in_ofrep_terms(method: str, path: str, body: bytes | None, etag: str | None) -> None:
    response = dispatch(method, path, body, etag, DECISION, MODELS)
    if response is None:
        return  # not an OFREP evaluation path: the caller answers 404
    assert response.status in (200, 304, 400, 404, 405)
    assert response.headers["Content-Type"] == "application/json"
    content = response.content()
    if response.status == 304:
        assert content == b""
        return
    answer = json.loads(content)
    if response.status == 405:
        assert response.headers["Allow"] == "POST" and answer["errorDetails"]
    elif response.status >= 400:
        assert answer["errorCode"] in ("PARSE_ERROR", "INVALID_CONTEXT", "FLAG_NOT_FOUND")
        assert "\n" not in answer["errorDetails"]


@FAST
@given(st.text(alphabet=UNRESERVED, max_size=20), st.data())
def test_percent_encoded_unreserved_characters_route_as_themselves(key: str, data: st.DataObject) -> None:
    path = f"{OFREP_FLAGS_PATH}/{key}"

    def spell(char: str) -> str:  # "-" as itself, "%2d" or "%2D"
        if char not in UNRESERVED or not data.draw(st.booleans()):
            return char
        return f"%{ord(char):02{data.draw(st.sampled_from('xX'))}}"

    encoded = "".join(map(spell, path))
    plain = dispatch("POST", path, b"{}", None, DECISION, MODELS)
    routed = dispatch("POST", encoded, b"{}", None, DECISION, MODELS)
    assert plain is not None and routed is not None
    assert (routed.status, routed.body) == (plain.status, plain.body)


@FAST
@given(json_values, st.integers(0, 6))
def test_the_nesting_check_agrees_with_the_depth_of_any_json(value: Any, limit: int) -> None:
    body = json.dumps(value).encode()
    assert (json_nesting_error(body, limit) is None) == (depth(value) <= limit)


@FAST
@given(st.binary(max_size=200) | st.text(alphabet='[]{}"\\ ,:1a', max_size=200).map(str.encode), st.integers(0, 6))
def test_whatever_passes_the_nesting_check_parses_no_deeper(body: bytes, limit: int) -> None:
    if json_nesting_error(body, limit) is not None:
        return
    try:
        value = json.loads(body)
    except ValueError:
        return
    assert depth(value) <= limit
