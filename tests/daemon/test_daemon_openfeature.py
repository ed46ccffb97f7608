"""The daemon's real HTTP server read through the real OpenFeature SDK and OFREP provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.flag_evaluation import Reason

from monitor.daemon.app import Daemon
from monitor.daemon.config import DaemonConfig
from monitor.signals import Reading


class QuietSource:
    name = "quiet"

    def read(self) -> Reading:
        return Reading(at=0.0, values={})


def test_openfeature_reads_the_daemons_flags(tmp_path: Path) -> None:
    config = DaemonConfig(listen_port=0, state_path=tmp_path / "s.json", admin_token="t" * 20)
    daemon = Daemon(config, source=QuietSource())
    daemon.start()
    provider = OFREPProvider(daemon.url, timeout=5.0)
    api.set_provider_and_wait(provider, "nbmon-daemon-test")
    try:
        client = api.get_client("nbmon-daemon-test")
        details = client.get_boolean_details("degraded-mode", True)
        assert (details.value, details.variant, details.reason) == (False, "off", Reason.STATIC)
        assert client.get_string_value("image-model", "x") == "gemini-3-pro-image"

        expires = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        response = httpx.post(
            f"{daemon.url}/v1/override",
            json={"value": True, "reason": "drill", "expires_at": expires},
            headers={"authorization": "Bearer " + "t" * 20},
        )
        assert response.status_code == 200, response.text
        details = client.get_boolean_details("degraded-mode", False)
        assert (details.value, details.variant) == (True, "on")
        assert details.flag_metadata["source"] == "override"
        assert client.get_string_value("image-model", "x") == "gemini-nano-banana-2.1"
        missing = client.get_boolean_details("no-such-flag", False)
        assert missing.error_code is not None and missing.value is False
    finally:
        api.clear_providers()
        provider.session.close()  # the provider never closes its requests.Session itself
        daemon.stop()
