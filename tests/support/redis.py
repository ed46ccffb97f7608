"""A real redis-server (Debian's, unpacked into .tools/ by `make tools`) on a free loopback port, for the fleet tests.

Nothing persists: no RDB snapshot, no AOF, its directory is the test's tmp dir. `stop()` is SIGTERM; `kill()` is
SIGKILL (a Redis that dies, for the tests of what the fleet does without it).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from types import TracebackType

import redis

from tests.support import tools
from tests.support.http import free_port
from tests.support.wait import wait_for


def redis_server_command() -> tuple[str, dict[str, str]]:
    """The redis-server executable and the environment it runs in (its libraries are unpacked beside it)."""
    executable = tools.tool("redis-server")
    env = dict(os.environ)
    libs = sorted(str(p) for p in (tools.tools_dir() / "usr" / "lib").glob("*-linux-gnu") if p.is_dir())
    if libs:
        env["LD_LIBRARY_PATH"] = os.pathsep.join([*libs, *filter(None, [env.get("LD_LIBRARY_PATH")])])
    return executable, env


class RedisServer:
    """`with RedisServer(tmp_path) as server:` a Redis at `server.url` until the block ends."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        executable, env = redis_server_command()
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / f"redis-{self.port}.log"
        self._process = subprocess.Popen(
            [
                executable,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                str(log),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._ready, timeout=15, what=f"redis-server on port {self.port} (log: {log})")
        return self

    def _ready(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError(f"redis-server exited with {self._process.returncode}")
        client = self.client()
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=10)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
