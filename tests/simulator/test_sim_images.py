"""Image payloads are real files: PNG chunks and CRCs check out, JPEG segments parse, sizes hit their targets."""

from __future__ import annotations

import struct
import zlib

import pytest

from monitor.simulator import noise_png, png_of_about, png_size, solid_png
from monitor.simulator.images import SMALL_JPEG, jpeg_of_about


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Walk a PNG, verifying every CRC; return (type, payload) pairs."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, payload = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + payload) & 0xFFFFFFFF, kind
        chunks.append((kind, payload))
        pos += 12 + length
    assert pos == len(data)
    return chunks


def check_png(data: bytes, width: int, height: int) -> None:
    chunks = png_chunks(data)
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert struct.unpack(">IIBBBBB", chunks[0][1]) == (width, height, 8, 2, 0, 0, 0)
    raw = zlib.decompress(chunks[1][1])
    assert len(raw) == height * (3 * width + 1)
    assert all(raw[row * (3 * width + 1)] == 0 for row in range(height))  # filter byte per row
    assert png_size(data) == (width, height)


@pytest.mark.parametrize(("width", "height"), [(1, 1), (64, 64), (300, 7)])
def test_solid_png_is_valid(width: int, height: int) -> None:
    data = solid_png(width, height, (1, 2, 3))
    check_png(data, width, height)
    assert zlib.decompress(png_chunks(data)[1][1])[1:4] == b"\x01\x02\x03"


def test_noise_png_is_valid_and_seeded() -> None:
    check_png(noise_png(40, 30, seed=1), 40, 30)
    assert noise_png(40, 30, seed=1) == noise_png(40, 30, seed=1) != noise_png(40, 30, seed=2)


@pytest.mark.parametrize("target", [50_000, 1_500_000])
def test_png_of_about_hits_the_target_size(target: int) -> None:
    data = png_of_about(target)
    assert 0.99 * target <= len(data) <= 1.01 * target
    check_png(data, *png_size(data))


def test_png_size_rejects_other_data() -> None:
    with pytest.raises(ValueError, match="not a PNG"):
        png_size(SMALL_JPEG)


def jpeg_markers(data: bytes) -> list[int]:
    """Walk JPEG segments up to the scan; return the marker bytes seen."""
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    markers, pos = [], 2
    while True:
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        markers.append(marker)
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return markers


def test_small_jpeg_and_padded_jpeg_parse() -> None:
    markers = jpeg_markers(SMALL_JPEG)
    assert 0xC0 in markers and 0xC4 in markers  # baseline frame and Huffman tables
    padded = jpeg_of_about(150_000, seed=3)
    assert 0.99 * 150_000 <= len(padded) <= 1.01 * 150_000
    assert jpeg_markers(padded)[-len(markers) :] == markers
    assert padded.endswith(SMALL_JPEG[-20:])
