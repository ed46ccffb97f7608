"""The Redis the fleet tests stand on is a real server: it runs Lua and keeps keys until it dies."""

from __future__ import annotations

import pytest
import redis

from tests.support.redis import RedisServer


def test_the_unpacked_redis_server_runs_lua_and_dies_when_killed(redis_server: RedisServer) -> None:
    client = redis_server.client()
    assert client.eval("return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', 5000)", 1, "k", "v") == b"OK"
    assert client.get("k") == b"v"
    info = client.info("server")
    assert str(info["redis_version"]).startswith(("7.", "8."))
    redis_server.kill()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    client.close()
