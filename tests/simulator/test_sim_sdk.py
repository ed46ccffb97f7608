"""The real google-genai SDK against the simulator: success shapes, errors, streaming and retries."""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
import pytest
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials

from monitor.simulator import SimulatorServer, png_size
from tests.support.constants import FLASH, PRO

IMAGE_CONFIG = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"])
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def final_image(response: types.GenerateContentResponse) -> types.Part:
    """The last non-thought image part: what a caller pays for and keeps."""
    assert response.candidates and response.candidates[0].content and response.candidates[0].content.parts
    images = [p for p in response.candidates[0].content.parts if p.inline_data and not p.thought]
    assert images, "no final image"
    return images[-1]


def stream_parts(chunks: list[types.GenerateContentResponse]) -> list[types.Part]:
    return [
        p
        for c in chunks
        for p in ((c.candidates[0].content.parts or []) if c.candidates and c.candidates[0].content else [])
    ]


def test_generate_content_returns_thoughts_and_a_final_png(client: genai.Client) -> None:
    response = client.models.generate_content(model=PRO, contents="a cat", config=IMAGE_CONFIG)
    assert response.candidates is not None
    parts = response.candidates[0].content.parts  # type: ignore[union-attr]
    assert parts is not None
    assert parts[0].thought is True and parts[0].text
    assert sum(1 for p in parts if p.inline_data and p.thought) == 2
    final = final_image(response)
    assert final.thought_signature  # bytes, decoded from base64 by the SDK
    data = final.inline_data.data  # type: ignore[union-attr]
    assert data is not None and data.startswith(PNG_SIGNATURE)
    assert png_size(data) == (64, 64)
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None
    assert (usage.candidates_token_count, usage.prompt_token_count) == (1120, 1)
    assert usage.thoughts_token_count and usage.total_token_count == 1121 + usage.thoughts_token_count
    assert response.model_version == PRO and response.response_id


def test_generate_content_stream_yields_several_chunks(client: genai.Client) -> None:
    chunks = list(client.models.generate_content_stream(model=PRO, contents="a cat", config=IMAGE_CONFIG))
    assert len(chunks) == 5  # thought text, two thought images, final image, closing text
    assert chunks[0].candidates[0].content.parts[0].thought is True  # type: ignore[index, union-attr]
    finishes = [c.candidates[0].finish_reason for c in chunks]  # type: ignore[index]
    assert finishes == [None, None, None, None, types.FinishReason.STOP]
    assert [c.usage_metadata is not None for c in chunks] == [False] * 4 + [True]
    finals = [p for p in stream_parts(chunks) if p.inline_data and not p.thought]
    assert len(finals) == 1 and finals[0].thought_signature


async def test_async_generate_content(aclient: genai.client.AsyncClient) -> None:
    response = await aclient.models.generate_content(model=FLASH, contents="a dog", config=IMAGE_CONFIG)
    assert png_size(final_image(response).inline_data.data)  # type: ignore[union-attr, arg-type]
    assert response.usage_metadata and response.usage_metadata.candidates_token_count == 1290


async def test_async_generate_content_stream(aclient: genai.client.AsyncClient) -> None:
    stream = await aclient.models.generate_content_stream(model=PRO, contents="a dog", config=IMAGE_CONFIG)
    chunks = [chunk async for chunk in stream]
    assert len(chunks) == 5
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]


def test_vertex_express_mode(sim: SimulatorServer) -> None:
    # An API key and no project/location: the SDK posts to /v1beta1/publishers/google/models/{m}:generateContent.
    with genai.Client(vertexai=True, api_key="k", http_options=types.HttpOptions(base_url=sim.url)) as vertex:
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"], image_config=types.ImageConfig(output_mime_type="image/jpeg")
        )
        response = vertex.models.generate_content(model=PRO, contents="a cat", config=config)
    final = final_image(response).inline_data
    assert final is not None and final.mime_type == "image/jpeg"
    assert final.data and final.data.startswith(b"\xff\xd8\xff")
    assert sim.stats()["by_api"] == {"vertex": 1}


def test_vertex_project_mode_with_a_bearer_token(sim: SimulatorServer) -> None:
    client = genai.Client(
        vertexai=True,
        project="p",
        location="us-central1",
        credentials=Credentials(token="fake-token"),  # type: ignore[no-untyped-call]
        http_options=types.HttpOptions(base_url=sim.url),
    )
    with client:
        chunks = list(client.models.generate_content_stream(model=PRO, contents="a cat"))
    assert len(chunks) == 5
    assert sim.stats()["by_api"] == {"vertex": 1}


def test_overloaded_raises_server_error_503(sim: SimulatorServer, client: genai.Client) -> None:
    sim.set_profile("fixed:overloaded")
    with pytest.raises(errors.ServerError) as caught:
        client.models.generate_content(model=PRO, contents="a cat")
    assert (caught.value.code, caught.value.status) == (503, "UNAVAILABLE")
    assert caught.value.details["error"]["details"][0]["detail"] == "backend_error"


def test_rate_limited_raises_client_error_with_retry_info(sim: SimulatorServer, client: genai.Client) -> None:
    sim.set_profile("fixed:rate_limited")
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=PRO, contents="a cat")
    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
    details = {d["@type"].rsplit(".", 1)[-1]: d for d in caught.value.details["error"]["details"]}
    assert details["RetryInfo"]["retryDelay"] == "36s"
    assert details["QuotaFailure"]["violations"][0]["quotaDimensions"]["model"] == PRO


def test_html_bad_gateway_becomes_server_error_with_text_details(sim: SimulatorServer, client: genai.Client) -> None:
    sim.set_profile("fixed:bad_gateway")
    with pytest.raises(errors.ServerError) as caught:
        client.models.generate_content(model=PRO, contents="a cat")
    assert caught.value.code == 502
    assert "502 Bad Gateway" in caught.value.details["message"]
    assert caught.value.response.headers["content-type"].startswith("text/html")


def test_stream_error_raises_mid_iteration(sim: SimulatorServer, client: genai.Client) -> None:
    sim.set_profile("fixed:stream_error")
    received: list[types.GenerateContentResponse] = []
    with pytest.raises(errors.APIError) as caught:
        for chunk in client.models.generate_content_stream(model=PRO, contents="a cat", config=IMAGE_CONFIG):
            received.append(chunk)
    assert caught.value.code == 503 and caught.value.status == "UNAVAILABLE"
    assert len(received) == 3  # the thought text and the two thought images arrived first
    assert all(p.thought for p in stream_parts(received))


async def test_async_stream_error_raises_mid_iteration(sim: SimulatorServer, aclient: genai.client.AsyncClient) -> None:
    sim.set_profile("fixed:stream_error")
    received: list[Any] = []
    stream = await aclient.models.generate_content_stream(model=FLASH, contents="a cat", config=IMAGE_CONFIG)
    with pytest.raises(errors.ServerError):
        async for chunk in stream:
            received.append(chunk)
    assert len(received) == 1


def test_sdk_retries_until_the_third_attempt_succeeds(sim: SimulatorServer) -> None:
    sim.set_profile("sequence:overloaded,overloaded,ok")
    retry = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.02)
    with genai.Client(api_key="k", http_options=types.HttpOptions(base_url=sim.url, retry_options=retry)) as c:
        response = c.models.generate_content(model=PRO, contents="a cat", config=IMAGE_CONFIG)
    assert final_image(response).inline_data
    stats = sim.stats()
    assert stats["requests"] == 3
    assert stats["by_outcome"] == {"overloaded": 2, "ok": 1}


def test_blocks_arrive_as_responses_not_exceptions(sim: SimulatorServer, client: genai.Client) -> None:
    sim.set_profile("sequence:safety_block,prompt_block")
    blocked = client.models.generate_content(model=PRO, contents="a cat", config=IMAGE_CONFIG)
    assert blocked.candidates and blocked.candidates[0].finish_reason == types.FinishReason.IMAGE_SAFETY
    assert blocked.candidates[0].content is None
    prompt = client.models.generate_content(model=PRO, contents="a cat", config=IMAGE_CONFIG)
    assert not prompt.candidates
    assert prompt.prompt_feedback and prompt.prompt_feedback.block_reason == types.BlockedReason.SAFETY


def test_unknown_finish_reason_warns_and_keeps_the_raw_value(sim: SimulatorServer, client: genai.Client) -> None:
    sim.set_profile("fixed:unknown_finish")
    # The SDK reports unknown enum values with warnings.warn (an error under this project's filterwarnings).
    with pytest.warns(UserWarning, match="SOME_FUTURE_REASON is not a valid FinishReason"):
        response = client.models.generate_content(model=PRO, contents="a cat", config=IMAGE_CONFIG)
    assert response.candidates and response.candidates[0].finish_reason == "SOME_FUTURE_REASON"
    assert final_image(response).inline_data


def test_reset_surfaces_as_a_transport_read_error(sim: SimulatorServer, client: genai.Client) -> None:
    sim.set_profile("fixed:reset")
    retry = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.02)
    # google-genai 3.x sends through httpx2 (a fork with its own exception classes); the SDK does not wrap it.
    with pytest.raises((httpx2.ReadError, httpx.ReadError)):
        client.models.generate_content(
            model=PRO,
            contents="a cat",
            config=types.GenerateContentConfig(http_options=types.HttpOptions(retry_options=retry)),
        )
    assert sim.stats()["requests"] == 1  # a read error is not retried
