"""One SDK call's result, reduced to what the retry engine needs: outcome, final image, text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.generator.result import Progress
from monitor.taxonomy import ContentSummary, ErrorClass, Outcome, classify_content, classify_exception


@dataclass(slots=True)
class AttemptResult:
    outcome: Outcome
    error: Exception | None = None
    response: Any = None  # the SDK's response (non-streaming) or the last chunk (streaming)
    image: bytes | None = None
    mime_type: str | None = None
    text_parts: list[str] = field(default_factory=list)
    summary: ContentSummary = field(default_factory=ContentSummary)

    @property
    def text(self) -> str | None:
        return "".join(self.text_parts) or None


def from_error(error: Exception) -> AttemptResult:
    return AttemptResult(classify_exception(error), error=error)


class AttemptBuilder:
    """Folds a response, or the chunks of a stream, into an AttemptResult."""

    def __init__(self) -> None:
        self._result = AttemptResult(Outcome(ErrorClass.UNKNOWN))  # replaced by finish()

    def add(self, response: Any) -> list[tuple[str, bytes | str, str | None]]:
        """Merge one response/chunk; returns its (kind, payload, mime) progress items in order."""
        result = self._result
        result.summary.add_response(response)
        result.response = response
        items: list[tuple[str, bytes | str, str | None]] = []
        candidates = getattr(response, "candidates", None) or ()
        content = candidates[0].content if candidates else None
        for part in (content.parts if content is not None else None) or ():
            inline = part.inline_data
            if inline is not None and inline.data is not None:
                if part.thought:
                    items.append(("thought_image", inline.data, inline.mime_type))
                else:
                    # Every non-thought image replaces the previous one: the LAST is the final image.
                    result.image, result.mime_type = inline.data, inline.mime_type
                    items.append(("image", inline.data, inline.mime_type))
            elif part.text is not None and not part.thought:
                result.text_parts.append(part.text)
                items.append(("text", part.text, None))
        return items

    def finish(self) -> AttemptResult:
        result = self._result
        result.outcome = classify_content(result.summary, image_expected=True, http_code=200)
        return result


def from_response(response: Any) -> AttemptResult:
    builder = AttemptBuilder()
    builder.add(response)
    return builder.finish()


def progress_for(builder: AttemptBuilder, chunk: Any, model: str) -> list[Progress]:
    """Fold one streamed chunk into the attempt; the caller-facing steps it produced, in order."""
    steps = []
    for kind, payload, mime in builder.add(chunk):
        if kind == "thought_image" and isinstance(payload, bytes):
            steps.append(Progress("thought_image", model, image=payload, mime_type=mime))
        elif kind == "text" and isinstance(payload, str):
            steps.append(Progress("text", model, text=payload))
    return steps
