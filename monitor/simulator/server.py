"""SimulatorServer: a fake Gemini API on a real socket, run in a daemon thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from monitor.catalog import ModelCatalog
from monitor.simulator.engine import SimConfig, Simulator, utc_now
from monitor.simulator.files import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_FILES
from monitor.simulator.handler import SimHTTPServer
from monitor.simulator.profiles import Profile
from monitor.simulator.specs import parse_profile


class SimulatorServer:
    """A Gemini REST API double: generateContent / streamGenerateContent with scripted faults, and the Files API.

    Binds to loopback by default; port 0 picks a free port (read it back from `url` after start()).
    """

    def __init__(
        self,
        profile: Profile | Mapping[str, Any] | str | None = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        require_key: bool = True,
        latency: Mapping[str, float] | float | None = None,
        slow_seconds: float = 5.0,
        thought_images: int = 2,
        image_bytes: int | None = None,
        image_format: str = "png",
        image_size: tuple[int, int] = (64, 64),
        retry_delay: str = "36s",
        allow_override_header: bool = True,
        require_thought_signatures: bool = False,
        catalog: ModelCatalog | None = None,
        serve_retired: bool = False,
        reroutes: Mapping[str, str] | None = None,
        max_files: int = DEFAULT_MAX_FILES,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        rpm_limits: Mapping[str, int] | None = None,
        rpm_window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if latency is None:
            latency = {"default": 0.0}
        elif isinstance(latency, int | float):
            latency = {"default": float(latency)}
        config = SimConfig(
            require_key=require_key,
            latency=dict(latency),
            slow_seconds=slow_seconds,
            thought_images=thought_images,
            image_bytes=image_bytes,
            image_format=image_format,
            image_size=image_size,
            retry_delay=retry_delay,
            allow_override_header=allow_override_header,
            require_thought_signatures=require_thought_signatures,
            catalog=catalog,
            serve_retired=serve_retired,
            reroutes=dict(reroutes or {}),
            max_files=max_files,
            max_file_bytes=max_file_bytes,
            rpm_limits=dict(rpm_limits or {}),
            rpm_window_s=rpm_window_s,
        )
        self.simulator = Simulator(config, parse_profile(profile, seed=seed), seed, clock, wall_clock)
        self._address = (host, port)
        self._stopping = threading.Event()
        self._httpd: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = SimHTTPServer(self._address, self.simulator, self._stopping)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="nbmon-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, interrupt sleeping handlers, drop open connections and close the socket (< 1 s)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        # shutdown() waits for the serve loop's next poll; connecting to ourselves wakes it at once.
        shutter = threading.Thread(target=httpd.shutdown, name="nbmon-simulator-stop", daemon=True)
        shutter.start()
        while shutter.is_alive():
            self._poke(httpd)
            shutter.join(0.01)
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    @staticmethod
    def _poke(httpd: SimHTTPServer) -> None:
        host, port = httpd.server_address[:2]
        target = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else str(host))  # noqa: S104
        # Failure is fine (already closed, unreachable): shutdown() then finishes on its own poll.
        with contextlib.suppress(OSError):
            socket.create_connection((target, int(port)), timeout=0.1).close()

    def serve_until(self, stop: threading.Event) -> None:
        """Block until `stop` is set (used by the CLI), then stop."""
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- inspection and control -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("SimulatorServer is not running; call start() first")
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        return self._address[0]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def profile(self) -> Profile:
        return self.simulator.profile

    def set_profile(self, profile: Profile | Mapping[str, Any] | str) -> Profile:
        """Replace the profile at run time (a spec dict, the CLI syntax, or a Profile); returns the new one."""
        parsed = parse_profile(profile, seed=self.simulator.seed)
        self.simulator.set_profile(parsed)
        return parsed

    def set_reroutes(self, reroutes: Mapping[str, str]) -> None:
        """Script which requested model IDs another model answers (as PUT /_sim/models does)."""
        self.simulator.set_reroutes(reroutes)

    def stats(self) -> dict[str, Any]:
        return self.simulator.stats()

    def reset(self) -> None:
        self.simulator.reset()
