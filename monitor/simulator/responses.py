"""GenerateContentResponse bodies for HTTP-200 outcomes and their SSE chunking. Pure: randomness arrives in Media."""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from monitor.simulator.errors import stream_error_event
from monitor.simulator.outcomes import SimOutcome

THOUGHT_TEXT: Final = (
    "**Composing the scene**\n\nI'm planning the layout: subject centred, soft daylight from the left, "
    "a shallow depth of field. I'll draft a rough composition before rendering the final image."
)
FINAL_TEXT: Final = "Here is the image you asked for."
TEXT_ONLY_TEXT: Final = "This is a simulated reply from the nbmon Gemini simulator."
NO_IMAGE_TEXT: Final = "I can describe the scene, but I was not able to generate an image for this request."
IMAGE_OTHER_MESSAGE: Final = (
    "Unable to show the generated image. The model could not generate the image based on the prompt provided. "
    "You will not be charged for this request. Try rephrasing the prompt."
)
SERVICE_TIERS: Final = ("standard", "flex", "priority")
UNKNOWN_FINISH_REASON: Final = "SOME_FUTURE_REASON"

_BLOCKED_RATING: Final = {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "MEDIUM", "blocked": True}
_PROMPT_RATINGS: Final = [
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
]


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """What the simulator reads from a generateContent request body."""

    model: str
    wants_image: bool
    image_size: str
    output_mime: str | None
    prompt_tokens: int
    unsigned_model_images: int = 0  # image parts of earlier model turns sent back without thoughtSignature
    model_tier: str | None = None  # the catalog's line (pro, flash, lite); None: read from the ID
    model_version: str = ""  # what answers (modelVersion): the model, or the one the API routes it to
    service_tier: str = "standard"  # requested (serviceTier)
    image_size_given: bool = False  # imageConfig.imageSize was in the request

    @property
    def is_pro(self) -> bool:
        return self.model_tier == "pro" if self.model_tier else "pro" in self.model.lower()


@dataclass(frozen=True, slots=True)
class Media:
    """Per-response material drawn from the server's seeded RNG: images, signature, ids, token counts."""

    final_image: bytes
    final_mime: str
    thought_images: tuple[bytes, ...]
    thought_signature: bytes
    response_id: str
    thoughts_tokens: int


def _count_prompt_tokens(contents: Any) -> int:
    # Rough on purpose: ~4 characters per text token, 258 tokens per inline image (Gemini's flat image cost).
    tokens = 0
    for content in contents if isinstance(contents, list) else [contents]:
        parts = content.get("parts", []) if isinstance(content, dict) else []
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                tokens += max(1, len(part["text"]) // 4)
            elif isinstance(part, dict) and ("inlineData" in part or "fileData" in part):
                tokens += 258
    return max(1, tokens)


def parse_request(
    model: str, body: Any, *, model_tier: str | None = None, model_version: str | None = None
) -> GenerateRequest:
    """Validate the parts of a request body the simulator relies on; ValueError carries the 400 message."""
    if not isinstance(body, dict):
        raise ValueError("The request body must be a JSON object (GenerateContentRequest).")
    if not body.get("contents"):
        raise ValueError("* GenerateContentRequest.contents: contents is not specified")
    config = body.get("generationConfig", {})
    if not isinstance(config, dict):
        raise ValueError("* GenerateContentRequest.generation_config: must be an object")
    modalities = config.get("responseModalities") or []
    if not isinstance(modalities, list):
        raise ValueError("* GenerateContentRequest.generation_config.response_modalities: must be a list")
    image_config = config.get("imageConfig") or {}
    if not isinstance(image_config, dict):
        raise ValueError("* GenerateContentRequest.generation_config.image_config: must be an object")
    wants_image = "image" in model.lower() or any(str(m).upper() == "IMAGE" for m in modalities)
    options = image_config.get("imageOutputOptions")
    mime = image_config.get("outputMimeType") or (options.get("mimeType") if isinstance(options, dict) else None)
    tier = str(body.get("serviceTier") or "standard").lower().removeprefix("service_tier_")
    if tier not in (*SERVICE_TIERS, "unspecified"):
        raise ValueError(f"* GenerateContentRequest.service_tier: unknown value {body.get('serviceTier')!r}")
    size = image_config.get("imageSize")
    return GenerateRequest(
        model=model,
        wants_image=wants_image,
        image_size=str(size or "1K").upper().replace("PX", "px"),
        output_mime=str(mime) if mime else None,
        prompt_tokens=_count_prompt_tokens(body["contents"]),
        unsigned_model_images=_unsigned_model_images(body["contents"]),
        model_tier=model_tier,
        model_version=model_version or model,
        service_tier="standard" if tier == "unspecified" else tier,
        image_size_given=size is not None,
    )


def _unsigned_model_images(contents: Any) -> int:
    """Final images of earlier model turns that came back without their thoughtSignature."""
    if not isinstance(contents, list):
        return 0
    unsigned = 0
    for turn in contents:
        if not isinstance(turn, dict) or turn.get("role") != "model" or not isinstance(turn.get("parts"), list):
            continue
        for part in turn["parts"]:
            if isinstance(part, dict) and "inlineData" in part and not part.get("thought"):
                unsigned += "thoughtSignature" not in part
    return unsigned


def _image_part(data: bytes, mime: str, *, thought: bool = False) -> dict[str, Any]:
    part: dict[str, Any] = {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode("ascii")}}
    if thought:
        part["thought"] = True
    return part


def _image_tokens(req: GenerateRequest) -> int:
    if not req.is_pro:
        return 1290
    return 2000 if req.image_size == "4K" else 1120


def _usage(req: GenerateRequest, media: Media, *, image: bool, text_tokens: int, thoughts: bool) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": req.prompt_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": req.prompt_tokens}],
    }
    candidates = _image_tokens(req) if image else text_tokens
    if candidates:
        usage["candidatesTokenCount"] = candidates
        modality = "IMAGE" if image else "TEXT"
        usage["candidatesTokensDetails"] = [{"modality": modality, "tokenCount": candidates}]
    thoughts_tokens = media.thoughts_tokens if thoughts and req.is_pro else 0
    if thoughts_tokens:
        usage["thoughtsTokenCount"] = thoughts_tokens
    usage["totalTokenCount"] = req.prompt_tokens + candidates + thoughts_tokens
    return usage


def _thought_parts(req: GenerateRequest, media: Media) -> list[dict[str, Any]]:
    if not req.is_pro:
        return []
    parts = [{"text": THOUGHT_TEXT, "thought": True}]
    parts += [_image_part(img, "image/png", thought=True) for img in media.thought_images]
    return parts


def _body(
    req: GenerateRequest, media: Media, candidate: dict[str, Any] | None, usage: dict[str, Any], tier: str
) -> dict[str, Any]:
    body: dict[str, Any] = {"candidates": [candidate]} if candidate is not None else {}
    usage["serviceTier"] = tier  # the tier applied, in every response (the header only on non-streaming ones)
    body.update(usageMetadata=usage, modelVersion=req.model_version or req.model, responseId=media.response_id)
    return body


def applied_tier(outcome: SimOutcome, req: GenerateRequest) -> str:
    """The service tier a response is served at: what was asked, but standard for tier_downgraded."""
    return "standard" if outcome is SimOutcome.TIER_DOWNGRADED else req.service_tier


def build_response(outcome: SimOutcome, req: GenerateRequest, media: Media) -> dict[str, Any]:
    """The full (non-streamed) body for an HTTP-200 outcome; ValueError for outcomes that are errors."""
    sig = base64.b64encode(media.thought_signature).decode("ascii")
    final_image = {**_image_part(media.final_image, media.final_mime), "thoughtSignature": sig}

    def candidate(parts: list[dict[str, Any]] | None, finish: str, **extra: Any) -> dict[str, Any]:
        cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}} if parts is not None else {}
        cand.update(finishReason=finish, index=0, **extra)
        return cand

    tier = applied_tier(outcome, req)

    match outcome:
        case SimOutcome.IMAGE_OTHER:
            # The real shape: empty content, the explanation in finishMessage (not billed).
            usage = _usage(req, media, image=False, text_tokens=0, thoughts=True)
            cand = {"content": {}, "finishReason": "IMAGE_OTHER", "finishMessage": IMAGE_OTHER_MESSAGE, "index": 0}
            return _body(req, media, cand, usage, tier)
        case SimOutcome.OK | SimOutcome.SLOW | SimOutcome.UNKNOWN_FINISH | SimOutcome.TIER_DOWNGRADED if (
            req.wants_image
        ):
            if req.is_pro:
                parts = [*_thought_parts(req, media), final_image, {"text": FINAL_TEXT}]
            else:
                parts = [{"text": FINAL_TEXT}, final_image]
            finish = UNKNOWN_FINISH_REASON if outcome is SimOutcome.UNKNOWN_FINISH else "STOP"
            usage = _usage(req, media, image=True, text_tokens=0, thoughts=True)
            return _body(req, media, candidate(parts, finish), usage, tier)
        case SimOutcome.OK | SimOutcome.SLOW | SimOutcome.UNKNOWN_FINISH | SimOutcome.TIER_DOWNGRADED:
            finish = UNKNOWN_FINISH_REASON if outcome is SimOutcome.UNKNOWN_FINISH else "STOP"
            usage = _usage(req, media, image=False, text_tokens=len(TEXT_ONLY_TEXT) // 4, thoughts=False)
            return _body(req, media, candidate([{"text": TEXT_ONLY_TEXT}], finish), usage, tier)
        case SimOutcome.SAFETY_BLOCK | SimOutcome.POLICY_BLOCK | SimOutcome.RECITATION:
            finish = {
                SimOutcome.SAFETY_BLOCK: "IMAGE_SAFETY",
                SimOutcome.POLICY_BLOCK: "IMAGE_PROHIBITED_CONTENT",
                SimOutcome.RECITATION: "IMAGE_RECITATION",
            }[outcome]
            ratings = [dict(_BLOCKED_RATING)] if outcome is SimOutcome.SAFETY_BLOCK else []
            usage = _usage(req, media, image=False, text_tokens=0, thoughts=True)
            return _body(req, media, candidate(None, finish, safetyRatings=ratings), usage, tier)
        case SimOutcome.PROMPT_BLOCK | SimOutcome.PROMPT_POLICY_BLOCK:
            reason = "SAFETY" if outcome is SimOutcome.PROMPT_BLOCK else "PROHIBITED_CONTENT"
            body = _body(req, media, None, _usage(req, media, image=False, text_tokens=0, thoughts=False), tier)
            return {"promptFeedback": {"blockReason": reason, "safetyRatings": copy.deepcopy(_PROMPT_RATINGS)}, **body}
        case SimOutcome.NO_IMAGE | SimOutcome.NO_IMAGE_STOP:
            finish = "NO_IMAGE" if outcome is SimOutcome.NO_IMAGE else "STOP"
            usage = _usage(req, media, image=False, text_tokens=len(NO_IMAGE_TEXT) // 4, thoughts=True)
            return _body(req, media, candidate([{"text": NO_IMAGE_TEXT}], finish), usage, tier)
        case SimOutcome.THOUGHT_ONLY:
            thought_images = media.thought_images or (media.final_image,)
            parts = [{"text": THOUGHT_TEXT, "thought": True}]
            parts += [_image_part(img, "image/png", thought=True) for img in thought_images]
            usage = _usage(req, media, image=False, text_tokens=0, thoughts=True)
            return _body(req, media, candidate(parts, "STOP"), usage, tier)
    raise ValueError(f"outcome {outcome.value!r} has no HTTP 200 body")


def sse_chunks(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Split a full response into stream chunks: one part per chunk, finishReason and usage only on the last.

    Each chunk is a complete GenerateContentResponse-shaped object, as the API streams them.
    """
    candidates = response.get("candidates") or []
    parts = candidates[0].get("content", {}).get("parts") if candidates else None
    if not parts or len(parts) == 1:
        return [dict(response)]
    envelope = {"modelVersion": response["modelVersion"], "responseId": response["responseId"]}
    chunks: list[dict[str, Any]] = [
        {"candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}], **envelope} for part in parts[:-1]
    ]
    last_candidate = {**candidates[0], "content": {"role": "model", "parts": [parts[-1]]}}
    chunks.append({"candidates": [last_candidate], "usageMetadata": response["usageMetadata"], **envelope})
    return chunks


def stream_error_chunks(ok_response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The start of a healthy stream (its thought chunks, or its first chunk) followed by an in-stream 503 event."""
    chunks = sse_chunks(ok_response)
    if len(chunks) == 1:
        # A one-part reply: resend its content without finishReason/usage, so the stream looks unfinished.
        candidate = chunks[0]["candidates"][0]
        envelope = {"modelVersion": ok_response["modelVersion"], "responseId": ok_response["responseId"]}
        chunks = [{"candidates": [{"content": candidate["content"], "index": 0}], **envelope}, chunks[0]]
    thought = [c for c in chunks[:-1] if all(p.get("thought") for p in c["candidates"][0]["content"]["parts"])]
    head = thought or chunks[:1]
    return [*head, stream_error_event()]
