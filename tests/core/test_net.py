"""Which peers may go through HTTP(S)_PROXY: never loopback, where the admin token travels."""

from __future__ import annotations

import pytest

from monitor.net import is_loopback, trust_env_for


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8016",
        "http://LOCALHOST:8016/v1/state",
        "http://nbmon.localhost/metrics",
        "http://127.0.0.1:9464/metrics",
        "http://127.8.9.10/",
        "http://[::1]:8016/v1/override",
        "https://user:secret@127.0.0.1/",
    ],
)
def test_loopback_urls_never_use_the_proxy(url: str) -> None:
    assert is_loopback(url) and not trust_env_for(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://generativelanguage.googleapis.com/v1beta",
        "http://10.0.0.2:9464/metrics",
        "http://[2001:db8::1]:8016/",
        "http://localhost.example.com/",
        "http://128.0.0.1/",
        "not a url",
        "",
    ],
)
def test_other_urls_follow_the_environment(url: str) -> None:
    assert not is_loopback(url) and trust_env_for(url)
