"""The Files API's state: resumable uploads in progress and the files they made. No HTTP here.

Only a running SHA-256 and a byte count are kept per upload, never the bytes: nothing in nbmon reads a file
back, and a long-running simulator must stay small however much is uploaded through it.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import string
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

FILE_TTL: Final = timedelta(hours=48)  # the API deletes a file two days after its upload
DEFAULT_MAX_FILES: Final = 64
DEFAULT_MAX_FILE_BYTES: Final = 64 * 1024 * 1024
DEFAULT_PAGE_SIZE: Final = 10
MAX_PAGE_SIZE: Final = 100
MAX_DISPLAY_NAME: Final = 512
_ID_CHARS: Final = string.ascii_lowercase + string.digits
_UPLOAD_ID_CHARS: Final = string.ascii_letters + string.digits + "-_"
# "up to 40 characters that are lowercase alphanumeric or dashes (-); cannot start or end with a dash"
_FILE_ID: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
# The File fields a create request may carry, by proto name; JSON accepts the lowerCamel form too.
_FILE_FIELDS: Final = {
    "name": "name",
    "display_name": "displayName",
    "mime_type": "mimeType",
    "size_bytes": "sizeBytes",
    "create_time": "createTime",
    "update_time": "updateTime",
    "expiration_time": "expirationTime",
    "sha256_hash": "sha256Hash",
    "uri": "uri",
    "download_uri": "downloadUri",
    "state": "state",
    "source": "source",
    "video_metadata": "videoMetadata",
    "error": "error",
}


class FilesError(Exception):
    """A refusal as the API words it. A refused chunk or finalize also ends its upload session."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _invalid(message: str) -> FilesError:
    return FilesError(400, "INVALID_ARGUMENT", message)


def _no_file(file_id: str) -> FilesError:
    # The API does not say "not found" for a file: an unknown, expired or deleted one is a 403.
    return FilesError(
        403, "PERMISSION_DENIED", f"You do not have permission to access the File {file_id} or it may not exist."
    )


def _no_upload() -> FilesError:
    return FilesError(404, "NOT_FOUND", "No upload session has this upload_id (unknown, finished or cancelled).")


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One finished upload: its metadata and digest, not its content."""

    file_id: str
    display_name: str | None
    mime_type: str
    size: int
    sha256_hex: str
    created: datetime
    uri: str
    seq: int  # creation order, for listing and page tokens

    @property
    def expires(self) -> datetime:
        return self.created + FILE_TTL

    def resource(self) -> dict[str, Any]:
        """The File resource, with the API's quirks: sizeBytes a string, sha256Hash base64 of the hex digest."""
        created = rfc3339(self.created)
        resource: dict[str, Any] = {"name": f"files/{self.file_id}"}
        if self.display_name:
            resource["displayName"] = self.display_name
        resource.update(
            mimeType=self.mime_type,
            sizeBytes=str(self.size),
            createTime=created,
            updateTime=created,
            expirationTime=rfc3339(self.expires),
            sha256Hash=base64.b64encode(self.sha256_hex.encode()).decode(),
            uri=self.uri,
            state="ACTIVE",
            source="UPLOADED",
        )
        return resource


@dataclass(slots=True)
class Upload:
    """A resumable upload in progress; `lock` serialises its chunks."""

    upload_id: str
    file_id: str
    display_name: str | None
    mime_type: str
    declared_size: int | None
    uri: str
    received: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False


def file_metadata(body: Mapping[str, Any]) -> dict[str, Any]:
    """The `file` object of a create request, keys in lowerCamel; ValueError names an unknown field."""
    unknown = [key for key in body if key != "file"]
    if unknown:
        raise ValueError(f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.')
    meta = body.get("file") or {}
    if not isinstance(meta, Mapping):
        raise ValueError("Invalid JSON payload received. 'file' must be an object.")
    result: dict[str, Any] = {}
    for key, value in meta.items():
        camel = _FILE_FIELDS.get(key) or (key if key in _FILE_FIELDS.values() else None)
        if camel is None:
            raise ValueError(f"Invalid JSON payload received. Unknown name \"{key}\" at 'file': Cannot find field.")
        result[camel] = value
    return result


class FileStore:
    """Uploads and files, bounded: at most `max_files` of each (the oldest goes first), `max_file_bytes` each."""

    def __init__(
        self,
        *,
        max_files: int = DEFAULT_MAX_FILES,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        seed: int = 0,
        wall_clock: Callable[[], datetime],
    ) -> None:
        if max_files < 1 or max_file_bytes < 1:
            raise ValueError(f"max_files and max_file_bytes must be >= 1, got {max_files}, {max_file_bytes}")
        self.max_files, self.max_file_bytes = max_files, max_file_bytes
        self._clock = wall_clock
        self._rng = random.Random(f"files:{seed}")  # its own RNG: uploads must not shift the outcomes' draws
        self._lock = threading.Lock()
        self._uploads: OrderedDict[str, Upload] = OrderedDict()
        self._files: OrderedDict[str, StoredFile] = OrderedDict()
        self._seq = 0

    # -- uploads ----------------------------------------------------------------------------------------------

    def start(
        self, meta: Mapping[str, Any], *, declared_size: int | None, header_mime: str | None, base_url: str
    ) -> Upload:
        """Open an upload session for the `file` metadata of a create request; `base_url` prefixes its uri."""
        if declared_size is not None and declared_size > self.max_file_bytes:
            raise _invalid(f"File size {declared_size} bytes exceeds the limit of {self.max_file_bytes} bytes.")
        display_name = meta.get("displayName") or None
        if display_name is not None and (not isinstance(display_name, str) or len(display_name) > MAX_DISPLAY_NAME):
            raise _invalid(f"file.display_name must be a string of at most {MAX_DISPLAY_NAME} characters.")
        mime_type = meta.get("mimeType") or header_mime or "application/octet-stream"
        if not isinstance(mime_type, str):
            raise _invalid("file.mime_type must be a string.")
        name = meta.get("name")
        with self._lock:
            self._expire()
            if name:
                file_id = str(name).removeprefix("files/")
                if not _FILE_ID.match(file_id):
                    raise _invalid(
                        f"Invalid file name {name!r}: the ID after files/ is up to 40 lowercase letters, digits or"
                        " dashes, and does not start or end with a dash."
                    )
                if self._taken(file_id):
                    raise FilesError(409, "ALREADY_EXISTS", f"File files/{file_id} already exists.")
            else:
                file_id = self._new_file_id()
            upload_id = "".join(self._rng.choice(_UPLOAD_ID_CHARS) for _ in range(72))
            upload = Upload(upload_id, file_id, display_name, mime_type, declared_size, f"{base_url}/files/{file_id}")
            self._uploads[upload_id] = upload
            while len(self._uploads) > self.max_files:  # abandoned sessions must not pile up
                self._uploads.popitem(last=False)[1].closed = True
            return upload

    def append(self, upload_id: str, offset: int, pieces: Iterable[bytes]) -> int:
        """Add a chunk at `offset`; returns the bytes received so far. An error ends the session."""
        upload = self._upload(upload_id)
        with upload.lock:
            if upload.closed:
                raise _no_upload()
            try:
                if offset != upload.received:
                    raise _invalid(
                        f"Invalid X-Goog-Upload-Offset {offset}: the upload has received {upload.received} bytes."
                    )
                declared = upload.declared_size
                limit = self.max_file_bytes if declared is None else min(declared, self.max_file_bytes)
                for piece in pieces:
                    if upload.received + len(piece) > limit:
                        raise _invalid(self._too_large(upload))
                    upload.digest.update(piece)
                    upload.received += len(piece)
            except FilesError:
                self._close(upload)
                raise
            return upload.received

    def finalize(self, upload_id: str) -> dict[str, Any]:
        """Turn the upload into a File; its size must be the declared one."""
        upload = self._upload(upload_id)
        with upload.lock:
            if upload.closed:
                raise _no_upload()
            self._close(upload)
            if upload.declared_size is not None and upload.received != upload.declared_size:
                raise _invalid(
                    f"Upload finalized with {upload.received} bytes, but X-Goog-Upload-Header-Content-Length"
                    f" declared {upload.declared_size}."
                )
            with self._lock:
                self._seq += 1
                stored = StoredFile(
                    upload.file_id,
                    upload.display_name,
                    upload.mime_type,
                    upload.received,
                    upload.digest.hexdigest(),
                    self._clock(),
                    upload.uri,
                    self._seq,
                )
                self._files[stored.file_id] = stored
                while len(self._files) > self.max_files:  # the oldest file goes, as if it had expired
                    self._files.popitem(last=False)
            return stored.resource()

    def received(self, upload_id: str) -> int:
        """The bytes an upload has received (the `query` command)."""
        return self._upload(upload_id).received

    def cancel(self, upload_id: str) -> None:
        upload = self._upload(upload_id)
        with upload.lock:
            self._close(upload)

    # -- files ------------------------------------------------------------------------------------------------

    def get(self, file_id: str) -> dict[str, Any]:
        with self._lock:
            self._expire()
            stored = self._files.get(file_id)
            if stored is None:
                raise _no_file(file_id)
            return stored.resource()

    def delete(self, file_id: str) -> None:
        with self._lock:
            self._expire()
            if self._files.pop(file_id, None) is None:
                raise _no_file(file_id)

    def list(self, page_size: int = 0, page_token: str = "") -> dict[str, Any]:
        """One page, newest first: {"files": [...], "nextPageToken": ...}; both keys omitted when empty."""
        if page_size < 0:
            raise _invalid(f"page_size must not be negative, got {page_size}.")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        before = _decode_token(page_token) if page_token else None
        with self._lock:
            self._expire()
            newest_first = sorted(self._files.values(), key=lambda f: f.seq, reverse=True)
            remaining = [f for f in newest_first if before is None or f.seq < before]
        page: dict[str, Any] = {}
        if remaining:
            page["files"] = [f.resource() for f in remaining[:size]]
        if len(remaining) > size:
            page["nextPageToken"] = _encode_token(remaining[size - 1].seq)
        return page

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"files": len(self._files), "uploads": len(self._uploads)}

    # -- internals (callers hold the right lock) --------------------------------------------------------------

    def _upload(self, upload_id: str) -> Upload:
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None:
            raise _no_upload()
        return upload

    def _close(self, upload: Upload) -> None:
        upload.closed = True
        with self._lock:
            self._uploads.pop(upload.upload_id, None)

    def _too_large(self, upload: Upload) -> str:
        if upload.declared_size is not None and upload.declared_size <= self.max_file_bytes:
            return f"The upload exceeds its X-Goog-Upload-Header-Content-Length of {upload.declared_size} bytes."
        return f"File size exceeds the limit of {self.max_file_bytes} bytes."

    def _taken(self, file_id: str) -> bool:
        return file_id in self._files or any(u.file_id == file_id for u in self._uploads.values())

    def _new_file_id(self) -> str:
        while True:
            file_id = "".join(self._rng.choice(_ID_CHARS) for _ in range(12))
            if not self._taken(file_id):
                return file_id

    def _expire(self) -> None:
        now = self._clock()
        for file_id in [f.file_id for f in self._files.values() if f.expires <= now]:
            del self._files[file_id]


def _encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(f"files-before:{seq}".encode()).decode()


def _decode_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        prefix, _, seq = text.partition(":")
        if prefix != "files-before":
            raise ValueError(text)
        return int(seq)
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors too
        raise _invalid(f"Invalid page token: {token!r}.") from None
