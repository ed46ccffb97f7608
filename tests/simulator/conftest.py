"""Fixtures for the simulator tests: a real server on a free loopback port, real httpx and genai clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

import httpx
import pytest
from google import genai
from google.genai import types

from monitor.simulator import SimulatorServer
from tests.support.constants import IMAGE_REQUEST, KEY_HEADER, PRO


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[SimulatorServer]:
    """One server per module for tests that pick outcomes with the override header."""
    with SimulatorServer() as sim:
        yield sim


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    """A fresh server for tests that change the profile or read the counters."""
    with SimulatorServer() as server:
        yield server


@pytest.fixture
def http(shared_sim: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared_sim.url, timeout=10) as client:
        yield client


def make_client(url: str, **http_options: Any) -> genai.Client:
    return genai.Client(api_key="test", http_options=types.HttpOptions(base_url=url, **http_options))


@pytest.fixture
def client(sim: SimulatorServer) -> Iterator[genai.Client]:
    with make_client(sim.url) as c:
        yield c


@pytest.fixture
async def aclient(sim: SimulatorServer) -> AsyncIterator[genai.client.AsyncClient]:
    sync = make_client(sim.url)
    async with sync.aio as c:
        yield c
    sync.close()


class Generate(Protocol):
    def __call__(self, outcome: str | None = None, model: str = PRO, json: Any = None) -> httpx.Response: ...


@pytest.fixture
def generate(http: httpx.Client) -> Generate:
    """POST a generateContent request to the shared server, optionally forcing an outcome by header."""

    def call(outcome: str | None = None, model: str = PRO, json: Any = None) -> httpx.Response:
        headers = {**KEY_HEADER, **({"x-nbmon-sim-outcome": outcome} if outcome else {})}
        body = IMAGE_REQUEST if json is None else json
        return http.post(f"/v1beta/models/{model}:generateContent", json=body, headers=headers)

    return call
