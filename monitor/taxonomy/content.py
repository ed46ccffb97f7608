"""What an HTTP 200 response actually contains: images, finish reasons, blocks, usage.

Works on the SDK's GenerateContentResponse objects and on raw JSON dicts alike, and merges
streamed chunks, so one classifier serves the shim, the simulator's tests and raw bodies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.wire import SERVICE_TIER_HEADER


@dataclass(slots=True)
class ContentSummary:
    """Accumulates one response, or every chunk of a stream, without keeping any content."""

    candidates_seen: bool = False
    finish_reasons: dict[int, str] = field(default_factory=dict)
    block_reason: str | None = None
    images: dict[int, list[int]] = field(default_factory=dict)  # candidate -> [images, non-thought images]
    text_parts: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    thoughts_tokens: int | None = None
    model_version: str | None = None
    response_id: str | None = None
    service_tier: str | None = None  # the tier applied: x-gemini-service-tier, or usageMetadata.serviceTier

    def image_counts(self) -> tuple[int, int]:
        """(final, thought) in one pass over the candidates."""
        final = total = 0
        for images, non_thought in self.images.values():
            total += images
            if non_thought > 0:
                final += 1
        return final, total - final

    @property
    def final_images(self) -> int:
        # The LAST non-thought image of a candidate is the final one; earlier ones are interim.
        return self.image_counts()[0]

    @property
    def thought_images(self) -> int:
        return self.image_counts()[1]

    @property
    def ordered_finish_reasons(self) -> list[str]:
        return [self.finish_reasons[i] for i in sorted(self.finish_reasons)]

    def add_response(self, response: object) -> None:
        """Merge one GenerateContentResponse (SDK object) or one response dict."""
        if isinstance(response, Mapping):
            self._add_dict(response)
        else:
            self._add_object(response)

    def _add_object(self, response: Any) -> None:
        feedback = getattr(response, "prompt_feedback", None)
        if feedback is not None and feedback.block_reason is not None:
            self.block_reason = enum_text(feedback.block_reason)
        for position, candidate in enumerate(getattr(response, "candidates", None) or ()):
            self.candidates_seen = True
            index = candidate.index if isinstance(candidate.index, int) else position
            if candidate.finish_reason is not None:
                self.finish_reasons[index] = enum_text(candidate.finish_reason)
            content = candidate.content
            for part in (content.parts if content is not None else None) or ():
                if part.inline_data is not None and part.inline_data.data:  # an empty image is no image
                    # _add_image inlined, as below _add_usage: the shim runs this on every call, right after the
                    # SDK's parsing, when each further function is a cold fetch (see docs/benchmarks.md).
                    images = self.images.setdefault(index, [0, 0])
                    images[0] += 1
                    if not part.thought:
                        images[1] += 1
                elif part.text is not None:
                    self.text_parts += 1
        usage = getattr(response, "usage_metadata", None)
        if usage is not None:  # cumulative in streams: the last value seen wins
            prompt, output = usage.prompt_token_count, usage.candidates_token_count
            thoughts = usage.thoughts_token_count
            self.input_tokens = prompt if prompt is not None else self.input_tokens
            self.output_tokens = output if output is not None else self.output_tokens
            self.thoughts_tokens = thoughts if thoughts is not None else self.thoughts_tokens
        self.model_version = getattr(response, "model_version", None) or self.model_version
        self.response_id = getattr(response, "response_id", None) or self.response_id
        http = getattr(response, "sdk_http_response", None)  # the SDK keeps the HTTP headers here
        headers = getattr(http, "headers", None) if http is not None else None
        if isinstance(headers, dict):
            tier = headers.get(SERVICE_TIER_HEADER)
            if isinstance(tier, str) and tier:
                self.service_tier = tier.lower()

    def _add_dict(self, response: Mapping[str, Any]) -> None:
        feedback = response.get("promptFeedback")
        if isinstance(feedback, Mapping) and isinstance(feedback.get("blockReason"), str):
            self.block_reason = feedback["blockReason"]
        candidates = response.get("candidates")
        if isinstance(candidates, Sequence) and not isinstance(candidates, str):
            for position, candidate in enumerate(candidates):
                if isinstance(candidate, Mapping):
                    self._add_dict_candidate(position, candidate)
        usage = response.get("usageMetadata")
        if isinstance(usage, Mapping):
            self._add_usage(
                int_or_none(usage.get("promptTokenCount")),
                int_or_none(usage.get("candidatesTokenCount")),
                int_or_none(usage.get("thoughtsTokenCount")),
            )
            tier = usage.get("serviceTier")
            if isinstance(tier, str) and tier:
                self.service_tier = tier.lower()
        if isinstance(response.get("modelVersion"), str):
            self.model_version = response["modelVersion"]
        if isinstance(response.get("responseId"), str):
            self.response_id = response["responseId"]

    def _add_dict_candidate(self, position: int, candidate: Mapping[str, Any]) -> None:
        self.candidates_seen = True
        index = candidate.get("index")
        index = index if isinstance(index, int) else position
        if isinstance(candidate.get("finishReason"), str):
            self.finish_reasons[index] = candidate["finishReason"]
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, Mapping) else None
        if not isinstance(parts, Sequence) or isinstance(parts, str):
            return
        for part in parts:
            if not isinstance(part, Mapping):
                continue
            inline = part.get("inlineData")
            if isinstance(inline, Mapping) and inline.get("data"):
                self._add_image(index, part.get("thought") is True)
            elif isinstance(part.get("text"), str):
                self.text_parts += 1

    def _add_image(self, index: int, thought: bool) -> None:
        images = self.images.setdefault(index, [0, 0])
        images[0] += 1
        if not thought:
            images[1] += 1

    def _add_usage(self, prompt: int | None, candidates: int | None, thoughts: int | None) -> None:
        # Streams repeat cumulative usage in later chunks: the last value seen wins.
        self.input_tokens = prompt if prompt is not None else self.input_tokens
        self.output_tokens = candidates if candidates is not None else self.output_tokens
        self.thoughts_tokens = thoughts if thoughts is not None else self.thoughts_tokens


def enum_text(value: object) -> str:
    """The raw string of an SDK enum, including the pseudo-members built for unknown values."""
    raw = getattr(value, "value", value)
    return raw if isinstance(raw, str) else str(raw)


def int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
