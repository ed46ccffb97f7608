"""Streaming and async paths of the instrumented SDK against the simulator."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest
from google import genai
from google.genai import errors, types

from monitor.simulator import SimulatorServer
from tests.support.constants import IMAGE_CONFIG, PRO
from tests.support.shim import Shim, genai_client


def test_stream_ok(shim: Shim, gclient: genai.Client) -> None:
    chunks = list(gclient.models.generate_content_stream(model=PRO, contents="a banana", config=IMAGE_CONFIG))
    assert len(chunks) > 1
    assert all(type(c) is types.GenerateContentResponse for c in chunks)
    assert shim.value("nbmon_requests_total", model=PRO, code="200", error_class="ok") == 1
    assert shim.value("nbmon_generations_total", model=PRO, error_class="ok") == 1
    assert shim.value("nbmon_images_total", model=PRO, image_size="1K", kind="final") == 1
    assert shim.value("nbmon_images_total", model=PRO, image_size="1K", kind="thought") == 2
    assert shim.value("nbmon_tokens_total", model=PRO, type="output") == 1120
    attrs = shim.only_span().attributes or {}
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert shim.events()[0]["stream"] is True


def test_stream_error_mid_iteration(shim: Shim, gemini_sim: SimulatorServer, gclient: genai.Client) -> None:
    gemini_sim.set_profile("fixed:stream_error")
    received = []
    with pytest.raises(errors.ServerError) as caught:
        for chunk in gclient.models.generate_content_stream(model=PRO, contents="x", config=IMAGE_CONFIG):
            received.append(chunk)
    assert received, "the chunks before the error reach the app"
    assert caught.value.code == 503
    # the HTTP status was 200; the attempt is counted with the error event's code
    assert shim.value("nbmon_requests_total", model=PRO, code="503", error_class="overloaded") == 1
    assert shim.total("nbmon_requests_total", code="200") == 0
    assert shim.value("nbmon_generations_total", model=PRO, error_class="overloaded") == 1
    assert shim.value("nbmon_images_total", model=PRO, image_size="1K", kind="thought") >= 1


def test_stream_http_error_before_first_chunk(shim: Shim, gemini_sim: SimulatorServer, gclient: genai.Client) -> None:
    gemini_sim.set_profile("fixed:rate_limited")
    with pytest.raises(errors.ClientError):
        list(gclient.models.generate_content_stream(model=PRO, contents="x", config=IMAGE_CONFIG))
    assert shim.value("nbmon_requests_total", model=PRO, code="429", error_class="rate_limited") == 1
    assert shim.value("nbmon_generations_total", model=PRO, error_class="rate_limited") == 1


def test_stream_safety_block(shim: Shim, gemini_sim: SimulatorServer, gclient: genai.Client) -> None:
    gemini_sim.set_profile("fixed:safety_block")
    list(gclient.models.generate_content_stream(model=PRO, contents="x", config=IMAGE_CONFIG))
    assert shim.value("nbmon_generations_total", model=PRO, error_class="safety_block") == 1
    assert shim.value("nbmon_blocks_total", model=PRO, stage="output", reason="IMAGE_SAFETY") == 1


def test_stream_closed_early_without_image(shim: Shim, gclient: genai.Client) -> None:
    stream = gclient.models.generate_content_stream(model=PRO, contents="x", config=IMAGE_CONFIG)
    first = next(stream)
    assert first is not None
    stream.close()  # type: ignore[attr-defined]
    assert shim.value("nbmon_generations_total", model=PRO, error_class="unknown") == 1
    assert shim.events()[0]["reason"] == "stream_closed"


def test_stream_not_consumed_records_nothing_yet(shim: Shim, gclient: genai.Client) -> None:
    stream = gclient.models.generate_content_stream(model=PRO, contents="x", config=IMAGE_CONFIG)
    assert shim.total("nbmon_requests_total") == 0  # the SDK sends nothing until iteration starts
    list(stream)
    assert shim.total("nbmon_generations_total") == 1


async def test_async_ok_and_error(shim: Shim, gemini_sim: SimulatorServer) -> None:
    client = genai_client(gemini_sim.url)
    response = await client.aio.models.generate_content(model=PRO, contents="x", config=IMAGE_CONFIG)
    assert type(response) is types.GenerateContentResponse
    gemini_sim.set_profile("fixed:overloaded")
    with pytest.raises(errors.ServerError):
        await client.aio.models.generate_content(model=PRO, contents="x", config=IMAGE_CONFIG)
    assert shim.value("nbmon_requests_total", model=PRO, code="200", error_class="ok") == 1
    assert shim.value("nbmon_requests_total", model=PRO, code="503", error_class="overloaded") == 1
    assert shim.value("nbmon_generations_total", model=PRO, error_class="ok") == 1
    assert shim.value("nbmon_generations_total", model=PRO, error_class="overloaded") == 1
    assert len(shim.spans.get_finished_spans()) == 2
    await client.aio.aclose()


async def test_async_sdk_retries(shim: Shim, gemini_sim: SimulatorServer) -> None:
    gemini_sim.set_profile("sequence:overloaded,overloaded,ok")
    client = genai_client(gemini_sim.url, retry_options=types.HttpRetryOptions(attempts=3, initial_delay=0.01))
    await client.aio.models.generate_content(model=PRO, contents="x", config=IMAGE_CONFIG)
    assert shim.value("nbmon_requests_total", model=PRO, code="503", error_class="overloaded") == 2
    assert shim.value("nbmon_requests_total", model=PRO, code="200", error_class="ok") == 1
    assert shim.total("nbmon_generations_total") == 1
    await client.aio.aclose()


async def test_async_stream_ok_and_mid_stream_error(shim: Shim, gemini_sim: SimulatorServer) -> None:
    client = genai_client(gemini_sim.url)
    chunks = [
        c async for c in await client.aio.models.generate_content_stream(model=PRO, contents="x", config=IMAGE_CONFIG)
    ]
    assert len(chunks) > 1
    assert shim.value("nbmon_images_total", model=PRO, image_size="1K", kind="final") == 1
    gemini_sim.set_profile("fixed:stream_error")
    received = []
    with pytest.raises(errors.APIError):
        async for chunk in await client.aio.models.generate_content_stream(
            model=PRO, contents="x", config=IMAGE_CONFIG
        ):
            received.append(chunk)
    assert received
    assert shim.value("nbmon_requests_total", model=PRO, code="503", error_class="overloaded") == 1
    assert shim.value("nbmon_generations_total", model=PRO, error_class="ok") == 1
    assert shim.value("nbmon_generations_total", model=PRO, error_class="overloaded") == 1
    await client.aio.aclose()


async def test_async_stream_closed_early(shim: Shim, gemini_sim: SimulatorServer) -> None:
    client = genai_client(gemini_sim.url)
    stream = await client.aio.models.generate_content_stream(model=PRO, contents="x", config=IMAGE_CONFIG)
    await stream.__anext__()
    assert isinstance(stream, AsyncGenerator)  # google-genai returns an async generator: closable early
    await stream.aclose()
    assert shim.value("nbmon_generations_total", model=PRO, error_class="unknown") == 1
    await client.aio.aclose()


async def test_async_chat(shim: Shim, gemini_sim: SimulatorServer) -> None:
    client = genai_client(gemini_sim.url)
    chat = client.aio.chats.create(model=PRO, config=types.GenerateContentConfig.model_validate(IMAGE_CONFIG))
    await chat.send_message("a banana")
    await chat.send_message("make it blue")
    assert shim.value("nbmon_generations_total", model=PRO, error_class="ok") == 2
    await client.aio.aclose()
