"""The exposition parser under arbitrary input: a dict of counts or an ExpositionError, nothing else (#15)."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.sources import ScrapeSource
from monitor.sources.scrape import ExpositionError, parse_exposition
from monitor.testing import InternalErrorCollector
from tests.support.http import LoopbackServer, Reply

GOOD = '# TYPE nbmon_requests counter\nnbmon_requests_total{model="m",code="503",error_class="overloaded"} 3\n'
LABEL = st.sampled_from(["model", "code", "error_class", "instance", "le", "", "x y", 'q"'])
VALUE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["NaN", "+Inf", "-Inf", "1e400", "0x10", "", "1 2", "one"]),
)


@st.composite
def expositions(draw: st.DrawFn) -> str:
    """Lines that are mostly right, with the things that go wrong in the wild mixed in."""
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["sample", "type", "help", "garbage", "blank", "eof"]))
        if kind == "sample":
            labels = draw(st.dictionaries(LABEL, st.text(max_size=8), max_size=4))
            inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
            name = draw(st.sampled_from(["nbmon_requests_total", "nbmon_requests_created", "other_total", "nbmon"]))
            lines.append(f"{name}{{{inner}}} {draw(VALUE)}")
        elif kind == "type":
            lines.append(f"# TYPE nbmon_requests {draw(st.sampled_from(['counter', 'gauge', 'bogus', '']))}")
        elif kind == "help":
            lines.append(f"# HELP nbmon_requests {draw(st.text(max_size=20))}")
        elif kind == "garbage":
            lines.append(draw(st.text(max_size=40)))
        elif kind == "eof":
            lines.append("# EOF")
        else:
            lines.append("")
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.one_of(expositions(), st.text(max_size=300)),
    content_type=st.sampled_from(["", "text/plain", "application/openmetrics-text; version=1.0.0", "text/html"]),
)
def test_any_body_gives_counts_or_an_exposition_error(text: str, content_type: str) -> None:
    try:
        values = parse_exposition(text, content_type=content_type)
    except ExpositionError as error:
        assert str(error)
        return
    assert all(math.isfinite(v) and v >= 0 for v in values.values())


def test_a_duplicated_series_is_refused_as_prometheus_refuses_it() -> None:
    """The same series twice used to be summed: a real 20% 503 ratio read as 33-50%, a page on nothing."""
    twice = GOOD + 'nbmon_requests_total{model="m",code="503",error_class="overloaded"} 3\n'
    with pytest.raises(ExpositionError, match="duplicate series"):
        parse_exposition(twice)
    # Series that differ in another label (federation, several instances) are still one series each, summed.
    other = 'nbmon_requests_total{model="m",code="503",error_class="overloaded",instance="b"} 4\n'
    assert list(parse_exposition(GOOD + other).values()) == [7.0]


def test_a_scrape_with_a_duplicated_series_is_counted_as_parse_and_gives_no_data() -> None:
    body = (GOOD + 'nbmon_requests_total{model="m",code="503",error_class="overloaded"} 3\n').encode()

    errors: list[tuple[str, str]] = []
    with (
        LoopbackServer(lambda _: Reply(200, body)) as server,
        InternalErrorCollector(),
        ScrapeSource([f"{server.url}/metrics"], on_error=lambda t, r: errors.append((t, r))) as source,
    ):
        reading = source.read()
    assert not reading.ok and reading.values == {}
    assert [reason for _, reason in errors] == ["parse"]
