"""What a request costs the pacer: an image is the per-image token figure, whatever its size; never its base64."""

from __future__ import annotations

import base64

from google.genai import types

from monitor.pacing import TOKENS_PER_IMAGE, estimate_tokens, requested_images

MEGABYTE = base64.b64encode(b"\x89PNG" + bytes(1_000_000)).decode()


def test_an_inline_image_of_the_rest_body_is_one_image_not_its_base64() -> None:
    contents = [
        {
            "role": "user",
            "parts": [{"text": "a banana" * 4}, {"inlineData": {"mimeType": "image/png", "data": MEGABYTE}}],
        }
    ]
    assert estimate_tokens(contents) == 8 + TOKENS_PER_IMAGE  # 32 characters, 4 a token; not 333,000
    snake = [{"parts": [{"inline_data": {"mime_type": "image/png", "data": MEGABYTE}}]}]
    assert estimate_tokens(snake) == TOKENS_PER_IMAGE
    files = [{"parts": [{"fileData": {"fileUri": "https://example/" + "x" * 4000, "mimeType": "image/png"}}]}]
    assert estimate_tokens(files) == TOKENS_PER_IMAGE


def test_the_sdks_forms_count_an_image_as_one_image() -> None:
    png = b"\x89PNG" + bytes(1_000_000)
    part = types.Part.from_bytes(data=png, mime_type="image/png")
    assert estimate_tokens(part) == TOKENS_PER_IMAGE
    assert estimate_tokens(png) == TOKENS_PER_IMAGE
    content = types.Content(role="user", parts=[types.Part(text="a banana"), part])
    assert estimate_tokens([content]) == 2 + TOKENS_PER_IMAGE
    stored = types.Part.from_uri(file_uri="gs://bucket/cat.png", mime_type="image/png")
    assert estimate_tokens(["a banana", stored]) == 2 + TOKENS_PER_IMAGE
    # A dict part as the SDK takes it, with the image's bytes as base64 text: still one image.
    assert estimate_tokens([{"inline_data": {"mime_type": "image/png", "data": MEGABYTE}}]) == TOKENS_PER_IMAGE


def test_the_figures_are_settings() -> None:
    contents = ["x" * 30, b"img", b"img"]
    assert estimate_tokens(contents, tokens_per_image=1000, chars_per_token=3) == 10 + 2000


def test_the_images_a_request_asks_for() -> None:
    assert requested_images({"candidateCount": 3}) == 3
    assert requested_images({"candidate_count": 2, "temperature": 1}) == 2
    assert requested_images({"numberOfImages": 4}) == 4
    assert requested_images(types.GenerateContentConfig(candidate_count=2)) == 2
    assert requested_images({}) == requested_images({"candidateCount": 0}) == requested_images(None) == 1
