"""What a Gemini response says, read from its bytes as they stream past, without holding its images.

`JsonSkeleton` copies a JSON byte stream with every long string (a base64 image, a long text) replaced by a short
marker: what is left is the structure (finish reasons, block reasons, usage, one entry per part), a few hundred
bytes per response, which `json.loads` reads and `ContentSummary.add_response` counts as it does a whole body.
Raw newlines cannot occur inside JSON strings, so the SSE framing around the JSON survives the copy intact.

`ResponseReader` frames the copy by the route's wire format: one JSON object (`generateContent`), Server-Sent
Events (`streamGenerateContent?alt=sse`: each event is read as soon as it is complete), or a JSON array of
responses (`streamGenerateContent` without `alt=sse`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import Enum
from typing import Any

MARKER = b'"\\u2026"'  # "…": a string that was too long to keep; non-empty, so an image still counts as one


class JsonSkeleton:
    """Copies JSON bytes fed in any chunking, with strings over `max_string` bytes replaced by `MARKER`.

    Once the copy reaches `max_bytes` it stops growing and `truncated` is set: a response of thousands of parts
    cannot make the proxy hold more than that.
    """

    def __init__(self, *, max_string: int = 4096, max_bytes: int = 1 << 20) -> None:
        self.max_string, self.max_bytes = max_string, max_bytes
        self.out = bytearray()
        self.truncated = False
        self._in_string = False
        self._escaped = False  # the previous byte, inside a string, was a backslash
        self._string = bytearray()  # the current string (with its opening quote) while it is short enough
        self._dropped = False  # the current string grew past max_string

    def feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        # The next backslash at or after i (-1: none left), looked up again only once i has passed it: inside a
        # string the run to its end is then two memchr-speed finds, not a Python regex over every byte (a base64
        # image is megabytes of string; the regex scanned ~0.5 GB/s, most of the proxy's CPU per image).
        backslash = data.find(b"\\")
        while i < n:
            if not self._in_string:
                j = data.find(b'"', i)
                if j < 0:
                    self._emit(data[i:])
                    return
                self._emit(data[i:j])
                self._in_string, self._dropped = True, False
                self._string = bytearray(b'"')
                i = j + 1
                continue
            if self._escaped:  # the byte after a backslash, whatever it is
                self._keep(data[i : i + 1])
                self._escaped = False
                i += 1
                continue
            if 0 <= backslash < i:
                backslash = data.find(b"\\", i)
            stop = backslash if backslash >= 0 else n
            end = data.find(b'"', i, stop)  # the string's run: up to its closing quote or a backslash
            if end < 0:
                end = stop
            self._keep_slice(data, i, end)
            i = end
            if i >= n:
                return
            if data[i] == 0x5C:  # a backslash: the next byte (maybe in the next chunk) is escaped
                self._keep(b"\\")
                self._escaped = True
                i += 1
            else:  # the closing quote
                self._emit(MARKER if self._dropped else bytes(self._string) + b'"')
                self._in_string = False
                self._string = bytearray()
                i += 1

    def take(self) -> bytes:
        """The copy so far, emptied (a string in progress stays pending)."""
        copy = bytes(self.out)
        self.out.clear()
        return copy

    def _keep_slice(self, data: bytes, start: int, end: int) -> None:
        """`_keep(data[start:end])` without copying the slice of a string already dropped (an image)."""
        if self._dropped:
            return
        if len(self._string) + (end - start) > self.max_string:
            self._dropped = True
            self._string = bytearray()
        else:
            self._string += data[start:end]

    def _keep(self, piece: bytes) -> None:
        if self._dropped:
            return
        if len(self._string) + len(piece) > self.max_string:
            self._dropped = True
            self._string = bytearray()
        else:
            self._string += piece

    def _emit(self, piece: bytes) -> None:
        if self.truncated or not piece:
            return
        if len(self.out) + len(piece) > self.max_bytes:
            self.truncated = True
            return
        self.out += piece


class Framing(Enum):
    JSON = "json"  # one JSON document
    SSE = "sse"  # data: {json}\n\n per event
    JSON_ARRAY = "json_array"  # [{json}, {json}, ...]


def framing_for(method: str | None, query: str, content_type: str) -> Framing:
    """The wire format of a response: by what the server says it is, else by what was asked."""
    if "text/event-stream" in content_type:
        return Framing.SSE
    if method == "streamGenerateContent" and "alt=sse" not in query:
        return Framing.JSON_ARRAY
    return Framing.JSON


class ResponseReader:
    """Feeds each parsed response (a dict, images replaced by markers) to `on_response` as the bytes pass.

    A body that is not what its framing says (an HTML error page, a cut-off stream) yields nothing and sets
    `malformed`; the proxy forwards the bytes regardless: this reader only watches.
    """

    def __init__(
        self, framing: Framing, on_response: Callable[[dict[str, Any]], None], *, max_bytes: int = 1 << 20
    ) -> None:
        self.framing = framing
        self._on_response = on_response
        self._skeleton = JsonSkeleton(max_bytes=max_bytes)
        self._pending = bytearray()  # SSE: the copy since the last complete event
        self.malformed = False
        self.responses = 0

    @property
    def truncated(self) -> bool:
        return self._skeleton.truncated

    def feed(self, data: bytes) -> None:
        self._skeleton.feed(data)
        if self.framing is Framing.SSE:
            self._pending += self._skeleton.take()
            if b"\n" in self._pending:  # else no event has ended, and _sse_events would leave _pending as it is
                self._sse_events()

    def close(self) -> bytes:
        """At the end of the body: reads what is left; returns the whole copy of a JSON body (error bodies are
        classified from it), else what remained of the stream."""
        if self.framing is Framing.SSE:
            self._pending += self._skeleton.take() + b"\n\n"
            self._sse_events()
            return b""
        copy = self._skeleton.take()
        document = self._parse(copy)
        if self.framing is Framing.JSON_ARRAY and isinstance(document, list):
            for item in document:
                self._emit(item)
        elif self.framing is Framing.JSON:
            self._emit(document)
        elif document is not None:
            self.malformed = True
        return copy

    def _sse_events(self) -> None:
        pending = self._pending.replace(b"\r\n", b"\n")
        *events, rest = pending.split(b"\n\n")
        self._pending = bytearray(rest)
        for event in events:
            data = b"\n".join(line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:"))
            if data:
                self._emit(self._parse(data))

    def _parse(self, data: bytes) -> Any:
        if not data.strip() or self._skeleton.truncated:
            return None
        try:
            return json.loads(data)
        except ValueError:
            self.malformed = True
            return None

    def _emit(self, document: Any) -> None:
        if isinstance(document, dict):
            self.responses += 1
            self._on_response(document)
        elif document is not None:
            self.malformed = True
