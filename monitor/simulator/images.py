"""Valid image payloads without an imaging library: PNG built with zlib + struct, JPEG from a tiny constant.

Consumers decode or sniff these bytes (signature, IHDR size), so they must be real files, not placeholders.
"""

from __future__ import annotations

import base64
import functools
import random
import struct
import zlib
from typing import Final

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE: Final = b"\xff\xd8\xff"

# A 16x16 solid blue baseline JPEG (287 bytes), encoded once with Pillow and embedded so that no imaging
# dependency is needed at run time.
_JPEG_16PX_B64: Final = (
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0"
    "Hyc5PTgyPC4zNDL/2wBDAQkJCQwLDBgNDRgyIRwhMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIy"
    "MjL/wAARCAAQABADASIAAhEBAxEB/8QAFQABAQAAAAAAAAAAAAAAAAAAAAX/xAAUEAEAAAAAAAAAAAAAAAAAAAAA/8QAFQEBAQAAAAAA"
    "AAAAAAAAAAAABQb/xAAUEQEAAAAAAAAAAAAAAAAAAAAA/9oADAMBAAIRAxEAPwCCAtQL/9k="
)
SMALL_JPEG: Final[bytes] = base64.b64decode(_JPEG_16PX_B64)

_PNG_OVERHEAD: Final = 8 + 25 + 12 + 12  # signature, IHDR chunk, IDAT chunk framing, IEND chunk
_JPEG_SEGMENT_MAX: Final = 65533  # payload bytes of one APPn segment (its length field includes itself)


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png_from_rows(width: int, height: int, raw: bytes, level: int) -> bytes:
    # 8-bit truecolour RGB, no interlace; `raw` already holds one filter byte (0 = None) per row.
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, level)) + _chunk(b"IEND", b"")


def solid_png(width: int = 64, height: int = 64, color: tuple[int, int, int] = (51, 102, 204)) -> bytes:
    """A PNG of one colour; compresses to a few hundred bytes at any size."""
    if width < 1 or height < 1:
        raise ValueError("image width and height must be at least 1")
    row = b"\x00" + bytes(color) * width
    return _png_from_rows(width, height, row * height, 9)


def noise_png(width: int, height: int, seed: int = 0) -> bytes:
    """A PNG of seeded random pixels: incompressible, so its size tracks width * height * 3."""
    if width < 1 or height < 1:
        raise ValueError("image width and height must be at least 1")
    rng = random.Random(seed)
    raw = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))
    # Level 0 stores the noise as is: still a valid zlib stream, and fast enough for megabyte images.
    return _png_from_rows(width, height, raw, 0)


@functools.lru_cache(maxsize=16)
def png_of_about(target_bytes: int, seed: int = 0) -> bytes:
    """A noise PNG whose file size is close to `target_bytes` (within about one row), for size-realistic demos."""
    payload = max(target_bytes - _PNG_OVERHEAD, 4)
    width = max(1, min(4096, int((payload / 3) ** 0.5)))
    # zlib level 0 adds 5 bytes per 64 KiB block plus a 6-byte header/trailer.
    height = max(1, (payload - 6 - 5 * (payload // 65535 + 1)) // (3 * width + 1))
    return noise_png(width, height, seed)


@functools.lru_cache(maxsize=16)
def jpeg_of_about(target_bytes: int, seed: int = 0) -> bytes:
    """SMALL_JPEG padded with seeded APP15 segments (ignored by decoders) up to about `target_bytes`."""
    rng = random.Random(seed)
    missing = target_bytes - len(SMALL_JPEG)
    segments: list[bytes] = []
    while missing > 4:
        size = min(_JPEG_SEGMENT_MAX, missing - 4)
        segments.append(b"\xff\xef" + struct.pack(">H", size + 2) + rng.randbytes(size))
        missing -= size + 4
    return SMALL_JPEG[:2] + b"".join(segments) + SMALL_JPEG[2:]


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR; raises ValueError when `data` is not a PNG."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)
