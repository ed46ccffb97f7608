"""What a request costs the pacer before it is sent: its input tokens (for `tpm`) and its images (for `ipm`).

Estimates only: Google's count of the tokens is known after the call. Text is about `chars_per_token` characters a
token; an image (a PIL image, bytes, an `inline_data` / `file_data` part) is `tokens_per_image` tokens, as Gemini
bills an image up to 384 px, whatever its size in bytes: its base64 is never read.
"""

from __future__ import annotations

from collections.abc import Mapping

TOKENS_PER_IMAGE = 258  # what Gemini bills an input image (up to 384 px a side; larger ones are tiled)
CHARS_PER_TOKEN = 4.0  # about 4 characters of English a token

_IMAGE_KEYS = frozenset({"inlineData", "inline_data", "fileData", "file_data"})
_SKIPPED_KEYS = frozenset({"role", "mime_type", "mimeType", "thought_signature", "thoughtSignature"})
_MAX_DEPTH = 64  # contents nest a few levels; deeper is not a prompt (and never a RecursionError)


def estimate_tokens(
    contents: object, *, tokens_per_image: int = TOKENS_PER_IMAGE, chars_per_token: float = CHARS_PER_TOKEN
) -> int:
    """About how many input tokens `contents` is: the SDK's forms (str, Part, Content, PIL image, bytes, lists of
    them) or the REST JSON (`contents` of a generateContent body)."""
    return _walk(contents, tokens_per_image, chars_per_token, 0)


def _walk(contents: object, per_image: int, per_token: float, depth: int) -> int:
    if depth > _MAX_DEPTH:
        return 0
    if isinstance(contents, str):
        return _text(contents, per_token)
    if isinstance(contents, bytes | bytearray | memoryview) or _is_pil_image(contents):
        return per_image
    if isinstance(contents, Mapping):
        total = 0
        for key, value in contents.items():
            if key in _IMAGE_KEYS:
                total += per_image if value is not None else 0  # the image's data is never walked into
            elif key not in _SKIPPED_KEYS:
                total += _walk(value, per_image, per_token, depth + 1)
        return total
    if isinstance(contents, list | tuple):
        return sum(_walk(item, per_image, per_token, depth + 1) for item in contents)
    # The SDK's types.Part / types.Content (or anything shaped like them).
    if getattr(contents, "inline_data", None) is not None or getattr(contents, "file_data", None) is not None:
        return per_image
    text = getattr(contents, "text", None)
    if isinstance(text, str):
        return _text(text, per_token)
    parts = getattr(contents, "parts", None)
    if isinstance(parts, list | tuple):
        return _walk(parts, per_image, per_token, depth + 1)
    return 0


def _text(text: str, per_token: float) -> int:
    return max(int(len(text) / per_token), 1)


def _is_pil_image(value: object) -> bool:
    # Not imported: Pillow is optional. Any PIL image class (PngImageFile, Image, ...) lives in a PIL module.
    return any(cls.__module__.startswith("PIL.") and cls.__name__.endswith("Image") for cls in type(value).__mro__)


def requested_images(settings: object) -> int:
    """How many images a request asks for: its candidate count (`candidateCount`, `candidate_count`) or number of
    images (`numberOfImages`, `number_of_images`) when set, else 1. `settings`: a generation config (mapping or
    object)."""
    for name in ("candidateCount", "candidate_count", "numberOfImages", "number_of_images"):
        value = settings.get(name) if isinstance(settings, Mapping) else getattr(settings, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return min(value, 1_000)
    return 1
