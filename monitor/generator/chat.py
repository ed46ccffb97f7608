"""Multi-turn image editing that keeps every model turn exactly as returned.

Gemini 3 image models sign their turns (`thoughtSignature` on parts); a later turn that drops them may
be refused. ImageChat stores each model turn's Content object untouched (thought parts and signatures
included) and sends the whole history with the next turn, through ImageGenerator's retries.
"""

from __future__ import annotations

from typing import Any

from google.genai import types

from monitor.generator.aio import AsyncImageGenerator
from monitor.generator.result import ImageResult
from monitor.generator.sync import ImageGenerator


def _user_turn(message: str | list[types.Part] | types.Content) -> types.Content:
    if isinstance(message, types.Content):
        return message
    if isinstance(message, str):
        return types.Content(role="user", parts=[types.Part.from_text(text=message)])
    return types.Content(role="user", parts=list(message))


def _model_turn(result: ImageResult) -> types.Content:
    candidates = getattr(result.response, "candidates", None) or []
    content = candidates[0].content if candidates else None
    if content is None:  # an ok result always has a candidate with content; keep the history consistent
        raise ValueError("the successful response carries no content to keep in the history")
    return content  # type: ignore[no-any-return]


class ImageChat:
    """A multi-turn image conversation through an ImageGenerator; `history` holds the turns so far."""

    def __init__(self, generator: ImageGenerator, history: list[types.Content] | None = None) -> None:
        """`history`: earlier turns to continue from (copied), e.g. a conversation saved by the app."""
        self.generator = generator
        self.history: list[types.Content] = list(history or [])

    def send(self, message: str | list[types.Part] | types.Content, **kwargs: Any) -> ImageResult:
        """Send the history plus `message` and return the ImageResult of this turn.

        Args:
            message: the user's turn: text, a list of Parts (text and images), or a Content.
            **kwargs: generate()'s keyword arguments (image_size, aspect_ratio, deadline_s, config fields).

        On success the user's turn and the model's Content, exactly as returned (thought parts and
        thoughtSignature included), are added to the history.

        Raises:
            Whatever ImageGenerator.generate() raises; the history is then left unchanged.
        """
        user = _user_turn(message)
        result = self.generator.generate([*self.history, user], **kwargs)
        # Only a successful turn enters the history: a failed one would poison every later turn.
        self.history.extend([user, _model_turn(result)])
        return result


class AsyncImageChat:
    """ImageChat for asyncio, through an AsyncImageGenerator."""

    def __init__(self, generator: AsyncImageGenerator, history: list[types.Content] | None = None) -> None:
        """`history`: earlier turns to continue from (copied)."""
        self.generator = generator
        self.history: list[types.Content] = list(history or [])

    async def send(self, message: str | list[types.Part] | types.Content, **kwargs: Any) -> ImageResult:
        """ImageChat.send() for asyncio: the same arguments, history rule and errors."""
        user = _user_turn(message)
        result = await self.generator.generate([*self.history, user], **kwargs)
        self.history.extend([user, _model_turn(result)])
        return result
