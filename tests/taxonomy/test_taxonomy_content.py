"""HTTP 200 content: blocks, missing images, thought images, unknown enum values."""

from __future__ import annotations

import base64
import warnings

import pytest
from google.genai import types

from monitor.taxonomy import ContentSummary, ErrorClass, classify_http, classify_response

IMG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()


def image(thought: bool | None = None) -> dict[str, object]:
    part: dict[str, object] = {"inlineData": {"mimeType": "image/png", "data": IMG}}
    if thought is not None:
        part["thought"] = thought
    return part


def response(parts: list[dict[str, object]] | None, finish: str | None = "STOP", **extra: object) -> dict[str, object]:
    candidate: dict[str, object] = {"index": 0}
    if parts is not None:
        candidate["content"] = {"role": "model", "parts": parts}
    if finish is not None:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], **extra}


ARTICLE_SAFETY = {
    "candidates": [
        {
            "finishReason": "IMAGE_SAFETY",
            "safetyRatings": [
                {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "MEDIUM", "blocked": True}
            ],
        }
    ]
}

CASES = [
    ("final image", response([{"text": "t", "thought": True}, image(True), image()]), ErrorClass.OK, None, "STOP"),
    ("article IMAGE_SAFETY", ARTICLE_SAFETY, ErrorClass.SAFETY_BLOCK, "output", "IMAGE_SAFETY"),
    ("SAFETY", response(None, "SAFETY"), ErrorClass.SAFETY_BLOCK, "output", "SAFETY"),
    (
        "PROHIBITED_CONTENT",
        response(None, "PROHIBITED_CONTENT"),
        ErrorClass.POLICY_BLOCK,
        "output",
        "PROHIBITED_CONTENT",
    ),
    (
        "IMAGE_PROHIBITED_CONTENT",
        response(None, "IMAGE_PROHIBITED_CONTENT"),
        ErrorClass.POLICY_BLOCK,
        "output",
        "IMAGE_PROHIBITED_CONTENT",
    ),
    ("BLOCKLIST", response(None, "BLOCKLIST"), ErrorClass.POLICY_BLOCK, "output", "BLOCKLIST"),
    ("SPII", response(None, "SPII"), ErrorClass.POLICY_BLOCK, "output", "SPII"),
    ("RECITATION", response(None, "RECITATION"), ErrorClass.RECITATION, "output", "RECITATION"),
    ("IMAGE_RECITATION", response(None, "IMAGE_RECITATION"), ErrorClass.RECITATION, "output", "IMAGE_RECITATION"),
    ("NO_IMAGE", response([{"text": "sorry"}], "NO_IMAGE"), ErrorClass.NO_IMAGE, None, "NO_IMAGE"),
    ("IMAGE_OTHER", response(None, "IMAGE_OTHER"), ErrorClass.NO_IMAGE, None, "IMAGE_OTHER"),
    ("STOP without image", response([{"text": "here is a description"}]), ErrorClass.NO_IMAGE, None, "STOP"),
    ("only thought images", response([image(True), image(True)]), ErrorClass.NO_IMAGE, None, "STOP"),
    ("MAX_TOKENS with image", response([image()], "MAX_TOKENS"), ErrorClass.OK, None, "MAX_TOKENS"),
    ("unknown reason + image", response([image()], "SOME_FUTURE_REASON"), ErrorClass.OK, None, "SOME_FUTURE_REASON"),
    ("unknown reason, no image", response(None, "SOME_FUTURE_REASON"), ErrorClass.NO_IMAGE, None, "SOME_FUTURE_REASON"),
    (
        "image part without data",
        response([{"inlineData": {"mimeType": "image/png"}}]),
        ErrorClass.NO_IMAGE,
        None,
        "STOP",
    ),
    (
        "prompt blocked SAFETY",
        {"promptFeedback": {"blockReason": "SAFETY"}},
        ErrorClass.SAFETY_BLOCK,
        "input",
        "SAFETY",
    ),
    (
        "prompt blocked IMAGE_SAFETY",
        {"promptFeedback": {"blockReason": "IMAGE_SAFETY"}},
        ErrorClass.SAFETY_BLOCK,
        "input",
        "IMAGE_SAFETY",
    ),
    (
        "prompt blocked PROHIBITED",
        {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}},
        ErrorClass.POLICY_BLOCK,
        "input",
        "PROHIBITED_CONTENT",
    ),
    ("prompt blocked OTHER", {"promptFeedback": {"blockReason": "OTHER"}}, ErrorClass.UNKNOWN, "input", "OTHER"),
    ("no candidates", {"usageMetadata": {"promptTokenCount": 3}}, ErrorClass.NO_IMAGE, None, None),
    ("candidates not a list", {"candidates": "x"}, ErrorClass.NO_IMAGE, None, None),
    (
        "parts garbage",
        {"candidates": [{"content": {"parts": [None, 3, {"inlineData": "x"}]}}]},
        ErrorClass.NO_IMAGE,
        None,
        None,
    ),
]


@pytest.mark.parametrize(("body", "expected", "stage", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_content_dicts(body: dict[str, object], expected: ErrorClass, stage: str | None, reason: str | None) -> None:
    outcome = classify_response(body)
    assert outcome.error_class is expected
    assert outcome.block_stage == stage
    assert outcome.reason == reason
    assert outcome.http_code == 200


SDK_REJECTS = {"candidates not a list", "parts garbage"}  # pydantic refuses them; the dict test covers them
SDK_CASES = [c for c in CASES if c[0] not in SDK_REJECTS]


@pytest.mark.parametrize(
    ("body", "expected", "stage", "reason"), [c[1:] for c in SDK_CASES], ids=[c[0] for c in SDK_CASES]
)
def test_sdk_objects_classify_like_dicts(
    body: dict[str, object], expected: ErrorClass, stage: str | None, reason: str | None
) -> None:
    """The same bodies parsed by the real SDK (unknown enum values become pseudo-members)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "SOME_FUTURE_REASON is not a valid", UserWarning)
        parsed = types.GenerateContentResponse._from_response(response=body, kwargs={})
    outcome = classify_response(parsed)
    assert outcome.error_class is expected
    assert outcome.block_stage == stage
    assert outcome.reason == reason


def test_text_only_call_is_ok() -> None:
    body = response([{"text": "hello"}])
    assert classify_response(body, image_expected=False).error_class is ErrorClass.OK
    assert classify_response(body, image_expected=True).error_class is ErrorClass.NO_IMAGE
    # a block is a block even on a text call
    assert classify_response(response(None, "SAFETY"), image_expected=False).error_class is ErrorClass.SAFETY_BLOCK


def test_image_counting_last_non_thought_is_final() -> None:
    summary = ContentSummary()
    summary.add_response(response([image(True), image(True), image()]))
    assert (summary.final_images, summary.thought_images) == summary.image_counts() == (1, 2)
    # an interim image without the thought flag is still not billed: only the last one is final
    summary = ContentSummary()
    summary.add_response(response([image(), image()]))
    assert (summary.final_images, summary.thought_images) == summary.image_counts() == (1, 1)


def test_stream_chunks_merge() -> None:
    summary = ContentSummary()
    summary.add_response(response([{"text": "plan", "thought": True}, image(True)], finish=None))
    summary.add_response(response([image()], finish=None, usageMetadata={"promptTokenCount": 5}))
    summary.add_response(
        response(
            [], "STOP", usageMetadata={"promptTokenCount": 5, "candidatesTokenCount": 1120, "thoughtsTokenCount": 9}
        )
    )
    assert (summary.final_images, summary.thought_images) == summary.image_counts() == (1, 1)
    assert (summary.input_tokens, summary.output_tokens, summary.thoughts_tokens) == (5, 1120, 9)
    assert summary.ordered_finish_reasons == ["STOP"]


def test_block_in_any_candidate_wins() -> None:
    body = {
        "candidates": [
            {"index": 0, "finishReason": "STOP", "content": {"parts": [image()]}},
            {"index": 1, "finishReason": "IMAGE_SAFETY"},
        ]
    }
    assert classify_response(body).error_class is ErrorClass.SAFETY_BLOCK


def test_classify_http_200_body() -> None:
    import json

    assert classify_http(200, json.dumps(ARTICLE_SAFETY)).error_class is ErrorClass.SAFETY_BLOCK
