"""The Files API on the wire: routes, resumable-upload headers and status codes around a FileStore.

Kept apart from handler.py so the handler only routes, and from files.py so the state stays free of HTTP.
Both SDKs drive the upload the same way: `start` on /upload/{version}/files, then chunks POSTed to the
X-Goog-Upload-URL it returned, the last one "upload, finalize"; see docs/simulator.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol
from urllib.parse import quote

from monitor.simulator import errors
from monitor.simulator.errors import ErrorReply
from monitor.simulator.files import FilesError, FileStore, file_metadata

UPLOAD_PATH: Final = re.compile(r"^/upload/(v1|v1beta|v1alpha)/files$")
FILES_PATH: Final = re.compile(r"^/(v1|v1beta|v1alpha)/files(?:/([^/:]+))?$")
CHUNK_GRANULARITY: Final = 8 * 1024 * 1024  # what the API advertises; the SDKs send 8 MiB chunks anyway
_PIECE: Final = 64 * 1024
_HOST: Final = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")
_TEXT_TYPE: Final = "text/plain; charset=utf-8"
_COMMANDS: Final = (
    frozenset({"upload"}),
    frozenset({"upload", "finalize"}),
    frozenset({"finalize"}),
    frozenset({"query"}),
    frozenset({"cancel"}),
)


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete answer: status, content type, body and extra headers."""

    status: int
    body: bytes = b""
    content_type: str = _TEXT_TYPE
    headers: Mapping[str, str] = field(default_factory=dict)


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def readline(self, size: int = -1, /) -> bytes: ...


class BodyStream:
    """A request body read in pieces (Content-Length or chunked), so an upload chunk is never held whole."""

    def __init__(self, rfile: _Readable, headers: Mapping[str, str]) -> None:
        self._rfile = rfile
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = 0 if chunked else max(0, int(headers.get("content-length") or 0))
        self._pieces = self._chunked() if chunked else self._sized(length)

    def __iter__(self) -> Iterator[bytes]:
        return self._pieces

    def read_all(self) -> bytes:
        return b"".join(self._pieces)

    def drain(self) -> None:
        """Read what is left, so the next request on a keep-alive connection starts at a request line."""
        for _ in self._pieces:
            pass

    def _sized(self, length: int) -> Iterator[bytes]:
        while length > 0:
            piece = self._rfile.read(min(length, _PIECE))
            if not piece:
                return
            length -= len(piece)
            yield piece

    def _chunked(self) -> Iterator[bytes]:
        while size := int(self._rfile.readline().split(b";")[0].strip() or b"0", 16):
            yield from self._sized(size)
            self._rfile.readline()
        while self._rfile.readline().strip():  # trailers
            pass


def base_url(host_header: str | None, fallback: str) -> str:
    """http://<Host> when the Host header is sane, else `fallback`: upload URLs must lead back here."""
    host = (host_header or "").strip()
    return f"http://{host}" if _HOST.match(host) else fallback


def _error(exc: FilesError | ErrorReply, *, upload_id: str | None = None) -> Reply:
    if isinstance(exc, FilesError):
        body = json.dumps(errors.api_error(exc.status, exc.code, exc.message), indent=2).encode()
        exc = ErrorReply(exc.status, errors.JSON_TYPE, body)
    # On the upload URL every refusal is final: without the header the Python SDK retries, sleeping 1+2+4 s.
    headers = {} if upload_id is None else {"X-Goog-Upload-Status": "final", "X-GUploader-UploadID": upload_id}
    return Reply(exc.status, exc.body, exc.content_type, headers)


def _json(payload: object, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(200, json.dumps(payload, indent=2).encode(), errors.JSON_TYPE, headers or {})


def _first(query: Mapping[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


class FilesApi:
    """Answers the Files routes; `authorized` is the handler's API-key check (the upload URL needs none)."""

    def __init__(self, store: FileStore) -> None:
        self.store = store

    def upload(
        self,
        version: str,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        body: BodyStream,
        *,
        base: str,
        authorized: bool,
    ) -> Reply:
        """POST /upload/{version}/files: `start` without upload_id, a chunk command with it."""
        upload_id = _first(query, "upload_id")
        if upload_id is not None:
            return self._chunk(upload_id, headers, body)
        if not authorized:
            return _error(errors.unauthenticated_reply(vertex=False))
        return self._start(version, query, headers, body.read_all(), base)

    def resource(
        self, method: str, version: str, file_id: str | None, query: Mapping[str, list[str]], *, authorized: bool
    ) -> Reply:
        """GET /{version}/files (list), GET or DELETE /{version}/files/{id}."""
        path = f"/{version}/files" + (f"/{file_id}" if file_id else "")
        if not authorized:
            return _error(errors.unauthenticated_reply(vertex=False))
        try:
            if method == "GET" and file_id is None:
                return _json(self.store.list(_page_size(_first(query, "pageSize")), _first(query, "pageToken") or ""))
            if method == "GET" and file_id is not None:
                return _json(self.store.get(file_id))
            if method == "DELETE" and file_id is not None:
                self.store.delete(file_id)
                return _json({})
        except FilesError as exc:
            return _error(exc)
        return _error(errors.method_not_allowed_reply(method, path))

    def _start(
        self, version: str, query: Mapping[str, list[str]], headers: Mapping[str, str], raw: bytes, base: str
    ) -> Reply:
        protocol = headers.get("x-goog-upload-protocol") or _first(query, "uploadType") or ""
        if protocol.strip().lower() != "resumable":
            message = "The simulator takes only resumable uploads (X-Goog-Upload-Protocol: resumable)."
            return _error(errors.invalid_request_reply(message))
        command = headers.get("x-goog-upload-command", "start").strip().lower()
        if command != "start":
            return _error(errors.invalid_request_reply(f"Invalid X-Goog-Upload-Command {command!r}: expected start."))
        declared_text = headers.get("x-goog-upload-header-content-length")
        try:
            declared = None if declared_text is None else int(declared_text)
            if declared is not None and declared < 0:
                raise ValueError(declared_text)
        except ValueError:
            message = f"Invalid X-Goog-Upload-Header-Content-Length: {declared_text!r}."
            return _error(errors.invalid_request_reply(message))
        try:
            parsed = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            return _error(errors.malformed_reply(f"{exc.msg} at line {exc.lineno} column {exc.colno}."))
        try:
            if not isinstance(parsed, dict):
                raise ValueError("Invalid JSON payload received. Expected an object.")
            meta = file_metadata(parsed)
            upload = self.store.start(
                meta,
                declared_size=declared,
                header_mime=headers.get("x-goog-upload-header-content-type"),
                base_url=f"{base}/{version}",
            )
        except FilesError as exc:
            return _error(exc)
        except ValueError as exc:
            return _error(errors.invalid_request_reply(str(exc)))
        url = f"{base}/upload/{version}/files?upload_id={quote(upload.upload_id)}&upload_protocol=resumable"
        return Reply(
            200,
            headers={
                "X-Goog-Upload-Status": "active",
                "X-Goog-Upload-URL": url,
                "X-Goog-Upload-Control-URL": url,
                "X-Goog-Upload-Chunk-Granularity": str(CHUNK_GRANULARITY),
                "X-GUploader-UploadID": upload.upload_id,
            },
        )

    def _chunk(self, upload_id: str, headers: Mapping[str, str], body: BodyStream) -> Reply:
        store = self.store
        raw_command = headers.get("x-goog-upload-command", "")
        command = frozenset(part.strip().lower() for part in raw_command.split(",") if part.strip())
        offset_text = headers.get("x-goog-upload-offset")
        active = {"X-Goog-Upload-Status": "active", "X-GUploader-UploadID": upload_id}
        try:
            if command == {"query"}:
                received = store.received(upload_id)
                return Reply(200, headers={**active, "X-Goog-Upload-Size-Received": str(received)})
            if command == {"cancel"}:
                store.cancel(upload_id)
                return Reply(200, headers={"X-Goog-Upload-Status": "cancelled", "X-GUploader-UploadID": upload_id})
            if command not in _COMMANDS or (offset_text is None and "upload" in command):
                store.cancel(upload_id)  # unknown ids answer 404 here, before the 400
                problem = "X-Goog-Upload-Offset is missing" if command in _COMMANDS else f"{raw_command!r} is unknown"
                return _error(errors.invalid_request_reply(f"Invalid upload request: {problem}."), upload_id=upload_id)
            if offset_text is not None:
                try:
                    offset = int(offset_text)
                except ValueError:
                    store.cancel(upload_id)
                    message = f"Invalid X-Goog-Upload-Offset: {offset_text!r}."
                    return _error(errors.invalid_request_reply(message), upload_id=upload_id)
                store.append(upload_id, offset, body if "upload" in command else ())
            if "finalize" in command:
                return _json({"file": store.finalize(upload_id)}, {"X-Goog-Upload-Status": "final"})
            return Reply(200, headers=active)
        except FilesError as exc:
            return _error(exc, upload_id=upload_id)


def _page_size(text: str | None) -> int:
    try:
        return int(text) if text else 0
    except ValueError:
        raise FilesError(400, "INVALID_ARGUMENT", f"Invalid value at 'page_size' (TYPE_INT32), {text!r}") from None
