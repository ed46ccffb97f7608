"""The simulator's Files API: the real google-genai SDK's upload, get, list and delete; the resumable protocol raw."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import _api_client, errors, types

from monitor.simulator import SimulatorServer

KEY = {"x-goog-api-key": "test-key"}
START = "/upload/v1beta/files"
FILE_NAME = re.compile(r"^files/[a-z0-9]{12}$")


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


@pytest.fixture
def sdk(sim: SimulatorServer) -> Iterator[genai.Client]:
    with genai.Client(api_key="test", http_options=types.HttpOptions(base_url=sim.url)) as client:
        yield client


@pytest.fixture
def web(sim: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, timeout=10) as client:
        yield client


def google_hash(data: bytes) -> str:
    """The API's sha256Hash: base64 of the hex digest (not of the raw digest)."""
    return base64.b64encode(hashlib.sha256(data).hexdigest().encode()).decode()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def start(web: httpx.Client, size: int | None, *, meta: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    sent = {**KEY, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start", **headers}
    if size is not None:
        sent["X-Goog-Upload-Header-Content-Length"] = str(size)
    sent.setdefault("X-Goog-Upload-Header-Content-Type", "image/png")
    return web.post(START, json={"file": meta or {}}, headers=sent)


def chunk(web: httpx.Client, url: str, command: str, offset: int | None, data: Any = b"") -> httpx.Response:
    headers = {"X-Goog-Upload-Command": command}  # no API key: the upload URL is the credential, as at Google
    if offset is not None:
        headers["X-Goog-Upload-Offset"] = str(offset)
    return web.post(url, content=data, headers=headers)


# -- the SDK ----------------------------------------------------------------------------------------------------


def test_sdk_upload_returns_the_file_as_google_shapes_it(
    sim: SimulatorServer, sdk: genai.Client, web: httpx.Client, tmp_path: Path
) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    uploaded = sdk.files.upload(file=write(tmp_path, "cat.png", data), config={"display_name": "a cat"})
    assert uploaded.name and FILE_NAME.match(uploaded.name)
    assert (uploaded.display_name, uploaded.mime_type, uploaded.size_bytes) == ("a cat", "image/png", len(data))
    assert uploaded.sha256_hash == google_hash(data)
    assert uploaded.state == types.FileState.ACTIVE and uploaded.source == types.FileSource.UPLOADED
    assert uploaded.create_time and uploaded.expiration_time and uploaded.update_time == uploaded.create_time
    assert uploaded.expiration_time - uploaded.create_time == timedelta(hours=48)
    file_id = uploaded.name.removeprefix("files/")
    assert uploaded.uri == f"{sim.url}/v1/files/{file_id}"  # SDK 3.x talks v1; the uri names that version

    raw = web.get(f"/v1beta/files/{file_id}", headers=KEY).json()
    assert set(raw) == {
        "name",
        "displayName",
        "mimeType",
        "sizeBytes",
        "createTime",
        "updateTime",
        "expirationTime",
        "sha256Hash",
        "uri",
        "state",
        "source",
    }
    assert raw["sizeBytes"] == str(len(data))  # int64 as a JSON string
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", raw["createTime"])
    assert base64.b64decode(raw["sha256Hash"]).decode() == hashlib.sha256(data).hexdigest()


def test_sdk_upload_of_more_than_one_chunk(sdk: genai.Client, tmp_path: Path) -> None:
    data = hashlib.sha256(b"seed").digest() * (_api_client.CHUNK_SIZE // 32 + 1000)
    assert len(data) > _api_client.CHUNK_SIZE  # "upload" at offset 0, then "upload, finalize" at 8 MiB
    uploaded = sdk.files.upload(file=write(tmp_path, "big.bin", data), config={"mime_type": "application/pdf"})
    assert (uploaded.size_bytes, uploaded.sha256_hash) == (len(data), google_hash(data))
    assert uploaded.mime_type == "application/pdf"


def test_sdk_upload_of_a_stream_with_a_chosen_name(sdk: genai.Client) -> None:
    uploaded = sdk.files.upload(file=io.BytesIO(b"hello"), config={"mime_type": "text/plain", "name": "my-notes-1"})
    assert uploaded.name == "files/my-notes-1"
    assert sdk.files.get(name="my-notes-1").size_bytes == 5
    with pytest.raises(errors.ClientError) as taken:
        sdk.files.upload(file=io.BytesIO(b"again"), config={"mime_type": "text/plain", "name": "my-notes-1"})
    assert (taken.value.code, taken.value.status) == (409, "ALREADY_EXISTS")
    with pytest.raises(errors.ClientError) as bad:
        sdk.files.upload(file=io.BytesIO(b"x"), config={"mime_type": "text/plain", "name": "Not_Valid"})
    assert (bad.value.code, bad.value.status) == (400, "INVALID_ARGUMENT")


def test_sdk_upload_of_an_empty_file(sdk: genai.Client, tmp_path: Path) -> None:
    # The Python SDK sends one empty "upload, finalize" chunk (the JS SDK refuses empty files itself).
    uploaded = sdk.files.upload(file=write(tmp_path, "empty.txt", b""))
    assert (uploaded.size_bytes, uploaded.sha256_hash) == (0, google_hash(b""))


def test_sdk_get_list_across_pages_and_delete(sdk: genai.Client) -> None:
    uploaded = [sdk.files.upload(file=io.BytesIO(b"x" * i), config={"mime_type": "text/plain"}) for i in range(1, 6)]
    names = [f.name for f in uploaded if f.name is not None]
    assert len(names) == 5
    assert sdk.files.get(name=names[2]).size_bytes == 3
    pager = sdk.files.list(config={"page_size": 2})
    assert len(pager.page) == 2
    assert [f.name for f in pager] == names[::-1]  # newest first, fetched over three pages
    assert [f.name for f in sdk.files.list()] == names[::-1]  # default page size 10: one page

    sdk.files.delete(name=names[0])
    with pytest.raises(errors.ClientError) as gone:
        sdk.files.get(name=names[0])
    assert (gone.value.code, gone.value.status) == (403, "PERMISSION_DENIED")  # what the API says, not 404
    assert gone.value.message == f"You do not have permission to access the File {names[0][6:]} or it may not exist."
    with pytest.raises(errors.ClientError):
        sdk.files.delete(name=names[0])
    assert names[0] not in [f.name for f in sdk.files.list(config={"page_size": 3})]


async def test_async_sdk_upload_get_delete(sim: SimulatorServer, tmp_path: Path) -> None:
    client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=sim.url))
    async with client.aio as aio:
        uploaded = await aio.files.upload(file=write(tmp_path, "a.txt", b"async bytes"))
        assert uploaded.name and uploaded.sha256_hash == google_hash(b"async bytes")
        assert (await aio.files.get(name=uploaded.name)).size_bytes == 11
        await aio.files.delete(name=uploaded.name)
    client.close()


def test_sdk_upload_too_large_fails_fast(tmp_path: Path) -> None:
    with (
        SimulatorServer(max_file_bytes=1024) as small,
        genai.Client(api_key="test", http_options=types.HttpOptions(base_url=small.url)) as client,
    ):
        began = time.monotonic()
        with pytest.raises(errors.ClientError) as refused:
            client.files.upload(file=write(tmp_path, "big.png", b"x" * 2048))
        assert (refused.value.code, refused.value.status) == (400, "INVALID_ARGUMENT")
        assert "exceeds the limit of 1024 bytes" in str(refused.value.message)
        assert time.monotonic() - began < 1  # refused at start: no chunk, no SDK retry sleeps


# -- the resumable protocol, raw ------------------------------------------------------------------------------


def test_resumable_upload_in_several_chunks(sim: SimulatorServer, web: httpx.Client) -> None:
    data = bytes(range(256)) * 12  # 3072 bytes in 1000 + 1000 + 1072, then a bare finalize
    started = start(web, len(data), meta={"displayName": "raw"})
    assert started.status_code == 200 and started.content == b""
    assert started.headers["x-goog-upload-status"] == "active"
    assert started.headers["x-goog-upload-chunk-granularity"] == str(8 * 1024 * 1024)
    url = started.headers["x-goog-upload-url"]
    assert url.startswith(f"{sim.url}/upload/v1beta/files?upload_id=") and url.endswith("&upload_protocol=resumable")

    for offset in (0, 1000):
        reply = chunk(web, url, "upload", offset, data[offset : offset + 1000])
        assert (reply.status_code, reply.headers["x-goog-upload-status"]) == (200, "active")
    queried = chunk(web, url, "query", None)
    assert (queried.headers["x-goog-upload-status"], queried.headers["x-goog-upload-size-received"]) == (
        "active",
        "2000",
    )
    assert chunk(web, url, "upload", 2000, data[2000:]).headers["x-goog-upload-status"] == "active"
    final = chunk(web, url, "finalize", None)
    assert (final.status_code, final.headers["x-goog-upload-status"]) == (200, "final")
    file = final.json()["file"]
    assert (file["displayName"], file["mimeType"], file["sizeBytes"]) == ("raw", "image/png", "3072")
    assert file["sha256Hash"] == google_hash(data)
    assert file["uri"] == f"{sim.url}/v1beta/{file['name']}"
    assert web.get(f"/v1beta/{file['name']}", headers=KEY).json() == file
    assert chunk(web, url, "upload", 3072, b"more").status_code == 404  # the session ended with the finalize


def test_chunked_transfer_encoding_is_streamed(web: httpx.Client) -> None:
    url = start(web, 6).headers["x-goog-upload-url"]
    reply = chunk(web, url, "upload, finalize", 0, iter([b"abc", b"def"]))  # a generator: httpx sends it chunked
    assert reply.json()["file"]["sha256Hash"] == google_hash(b"abcdef")


def test_wrong_offset_is_a_final_400(web: httpx.Client) -> None:
    url = start(web, 10).headers["x-goog-upload-url"]
    assert chunk(web, url, "upload", 0, b"12345").status_code == 200
    wrong = chunk(web, url, "upload, finalize", 4, b"567890")
    assert wrong.status_code == 400 and wrong.headers["x-goog-upload-status"] == "final"
    assert wrong.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "Invalid X-Goog-Upload-Offset 4: the upload has received 5 bytes." in wrong.json()["error"]["message"]
    assert chunk(web, url, "upload", 5, b"67890").status_code == 404  # a refused chunk ends the session


def test_unknown_upload_id_is_404(web: httpx.Client) -> None:
    reply = chunk(web, f"{START}?upload_id=nope&upload_protocol=resumable", "upload, finalize", 0, b"abc")
    assert reply.status_code == 404 and reply.headers["x-goog-upload-status"] == "final"
    assert reply.json()["error"] == {
        "code": 404,
        "message": "No upload session has this upload_id (unknown, finished or cancelled).",
        "status": "NOT_FOUND",
    }


def test_sizes_are_checked_against_the_declared_length_and_the_cap() -> None:
    with SimulatorServer(max_file_bytes=100) as small, httpx.Client(base_url=small.url, timeout=10) as web:
        declared_too_big = start(web, 101)
        assert declared_too_big.status_code == 400
        assert "File size 101 bytes exceeds the limit of 100 bytes." in declared_too_big.text

        url = start(web, 10).headers["x-goog-upload-url"]
        over = chunk(web, url, "upload", 0, b"x" * 11)
        assert over.status_code == 400 and "exceeds its X-Goog-Upload-Header-Content-Length of 10" in over.text

        url = start(web, 10).headers["x-goog-upload-url"]
        assert chunk(web, url, "upload", 0, b"x" * 9).status_code == 200
        short = chunk(web, url, "finalize", None)
        assert short.status_code == 400 and "finalized with 9 bytes" in short.text

        url = start(web, None).headers["x-goog-upload-url"]  # no declared length: only the cap applies
        assert chunk(web, url, "upload", 0, b"x" * 60).status_code == 200
        capped = chunk(web, url, "upload", 60, b"x" * 60)
        assert capped.status_code == 400 and "exceeds the limit of 100 bytes" in capped.text
        # The refused body was drained: the same keep-alive connection still serves requests.
        assert web.get("/healthz").json() == {"status": "ok"}


def test_start_request_is_validated(web: httpx.Client) -> None:
    plain = web.post(START, json={"file": {}}, headers=KEY)
    assert plain.status_code == 400 and "resumable" in plain.text
    unknown = web.post(
        START,
        json={"file": {"colour": "red"}},
        headers={**KEY, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start"},
    )
    assert unknown.status_code == 400 and 'Unknown name "colour"' in unknown.json()["error"]["message"]
    bad_command = chunk(web, start(web, 3).headers["x-goog-upload-url"], "upload, dance", 0, b"abc")
    assert bad_command.status_code == 400 and bad_command.headers["x-goog-upload-status"] == "final"


def test_cancel_ends_the_session(web: httpx.Client) -> None:
    url = start(web, 3).headers["x-goog-upload-url"]
    assert chunk(web, url, "cancel", None).headers["x-goog-upload-status"] == "cancelled"
    assert chunk(web, url, "upload, finalize", 0, b"abc").status_code == 404


def test_routes_need_a_key_but_the_upload_url_does_not(web: httpx.Client) -> None:
    no_key = {"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start"}
    refused = web.post(START, json={}, headers=no_key)
    assert (refused.status_code, refused.json()["error"]["status"]) == (403, "PERMISSION_DENIED")
    for method, path in (("GET", "/v1beta/files"), ("GET", "/v1beta/files/abc"), ("DELETE", "/v1beta/files/abc")):
        assert web.request(method, path).status_code == 403
    url = start(web, 2).headers["x-goog-upload-url"]
    assert chunk(web, url, "upload, finalize", 0, b"ok").status_code == 200  # chunk() sends no key


def test_no_key_needed_when_the_server_does_not_require_one() -> None:
    with SimulatorServer(require_key=False) as open_sim, httpx.Client(base_url=open_sim.url, timeout=10) as web:
        assert web.get("/v1/files").json() == {}  # no files: the API omits the empty list


def test_list_pages_and_tokens(web: httpx.Client) -> None:
    for i in range(3):
        url = start(web, 1).headers["x-goog-upload-url"]
        assert chunk(web, url, "upload, finalize", 0, bytes([i])).status_code == 200
    first = web.get("/v1beta/files", params={"pageSize": 2}, headers=KEY).json()
    assert len(first["files"]) == 2 and first["nextPageToken"]
    second = web.get("/v1beta/files", params={"pageSize": 2, "pageToken": first["nextPageToken"]}, headers=KEY).json()
    assert len(second["files"]) == 1 and "nextPageToken" not in second
    assert web.get("/v1beta/files", params={"pageToken": "garbage"}, headers=KEY).status_code == 400
    assert web.get("/v1beta/files", params={"pageSize": "many"}, headers=KEY).status_code == 400
    assert web.put("/v1beta/files", headers=KEY).status_code == 405
    assert web.post("/v1beta/files/abc", headers=KEY).status_code == 405


# -- bounds and time --------------------------------------------------------------------------------------------


def test_at_most_max_files_files_and_open_uploads() -> None:
    with SimulatorServer(max_files=2) as small, httpx.Client(base_url=small.url, timeout=10) as web:
        urls = [start(web, 1).headers["x-goog-upload-url"] for _ in range(3)]
        assert chunk(web, urls[0], "upload, finalize", 0, b"a").status_code == 404  # the oldest session went
        names = [chunk(web, url, "upload, finalize", 0, b"b").json()["file"]["name"] for url in urls[1:]]
        url = start(web, 1).headers["x-goog-upload-url"]
        names.append(chunk(web, url, "upload, finalize", 0, b"c").json()["file"]["name"])
        assert [f["name"] for f in web.get("/v1beta/files", headers=KEY).json()["files"]] == names[:0:-1]
        assert web.get(f"/v1beta/{names[0]}", headers=KEY).status_code == 403  # the oldest file went
        assert small.simulator.files.counts() == {"files": 2, "uploads": 0}


def test_files_expire_after_48_hours() -> None:
    now = [datetime(2026, 12, 1, 12, 0, tzinfo=UTC)]
    with (
        SimulatorServer(wall_clock=lambda: now[0]) as timed,
        httpx.Client(base_url=timed.url, timeout=10) as web,
    ):
        url = start(web, 2).headers["x-goog-upload-url"]
        file = chunk(web, url, "upload, finalize", 0, b"hi").json()["file"]
        assert (file["createTime"], file["expirationTime"]) == (
            "2026-12-01T12:00:00.000000Z",
            "2026-12-03T12:00:00.000000Z",
        )
        now[0] += timedelta(hours=47, minutes=59)
        assert web.get(f"/v1beta/{file['name']}", headers=KEY).status_code == 200
        now[0] += timedelta(minutes=1)
        assert web.get(f"/v1beta/{file['name']}", headers=KEY).status_code == 403
        assert web.get("/v1beta/files", headers=KEY).json() == {}


def test_file_ids_follow_the_seed() -> None:
    def first_id(seed: int) -> str:
        with SimulatorServer(seed=seed) as seeded, httpx.Client(base_url=seeded.url, timeout=10) as web:
            url = start(web, 1).headers["x-goog-upload-url"]
            return str(chunk(web, url, "upload, finalize", 0, b"x").json()["file"]["name"])

    assert first_id(7) == first_id(7) != first_id(8)
