"""Stores: key safety, atomic local writes, and the S3 store against an in-memory fake client."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from recordings.exceptions import StoreError, UnsafePath
from recordings.store import LocalStore, S3Store, check_key


@pytest.mark.parametrize(
    "key", ["../x.mp3", "/etc/passwd", "a//b.mp3", "2026/../../x", ".hidden", "a/b\\c", ""]
)
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(UnsafePath):
        check_key(key)


async def test_local_store_round_trip(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    src = tmp_path / "a.mp3"
    src.write_bytes(b"0123456789")
    await store.put("2026/01/05/1-a.mp3", src, "audio/mpeg")
    assert await store.size("2026/01/05/1-a.mp3") == 10
    assert await store.size("2026/01/05/none.mp3") is None
    chunks = [c async for c in store.read_range("2026/01/05/1-a.mp3", 3, 6)]
    assert b"".join(chunks) == b"3456"
    assert await store.keys() == ["2026/01/05/1-a.mp3"]
    await store.delete("2026/01/05/1-a.mp3")
    assert await store.keys() == []
    with pytest.raises(StoreError):
        await store.sha256("2026/01/05/1-a.mp3")


async def test_local_store_refuses_a_symlink_out_of_its_root(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    (tmp_path / "store").mkdir()
    (tmp_path / "secret").write_bytes(b"s")
    (tmp_path / "store" / "link.mp3").symlink_to(tmp_path / "secret")
    with pytest.raises(UnsafePath):
        await store.size("link.mp3")


class _NoSuchKey(Exception):
    response = {"Error": {"Code": "404"}}  # noqa: RUF012


class _Body:
    def __init__(self, data: bytes) -> None:
        self.io = io.BytesIO(data)

    def iter_chunks(self, size: int) -> Any:
        while block := self.io.read(size):
            yield block


class FakeS3:
    """The few boto3 S3 client calls S3Store makes, over a dict."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, Bucket: str, Key: str, Body: Any, ContentType: str) -> None:
        self.objects[(Bucket, Key)] = Body.read()

    def _get(self, Bucket: str, Key: str) -> bytes:
        if (Bucket, Key) not in self.objects:
            raise _NoSuchKey(Key)
        return self.objects[(Bucket, Key)]

    def get_object(self, Bucket: str, Key: str, Range: str | None = None) -> dict[str, Any]:
        data = self._get(Bucket, Key)
        if Range:
            a, b = Range.removeprefix("bytes=").split("-")
            data = data[int(a) : int(b) + 1]
        return {"Body": _Body(data)}

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        return {"ContentLength": len(self._get(Bucket, Key))}

    def delete_object(self, Bucket: str, Key: str) -> None:
        self.objects.pop((Bucket, Key), None)

    def get_paginator(self, _name: str) -> Any:
        fake = self

        class P:
            def paginate(self, Bucket: str, Prefix: str) -> list[dict[str, Any]]:
                keys = [k for b, k in fake.objects if b == Bucket and k.startswith(Prefix)]
                return [{"Contents": [{"Key": k} for k in keys]}]

        return P()


async def test_s3_store_round_trip_with_prefix(tmp_path: Path) -> None:
    client = FakeS3()
    store = S3Store(client, "calls", "rec/")
    src = tmp_path / "a.mp3"
    src.write_bytes(b"abcdefgh")
    await store.put("2026/01/05/1-a.mp3", src, "audio/mpeg")
    assert ("calls", "rec/2026/01/05/1-a.mp3") in client.objects
    assert await store.size("2026/01/05/1-a.mp3") == 8
    assert await store.size("nope.mp3") is None
    assert b"".join([c async for c in store.read_range("2026/01/05/1-a.mp3", 2, 4)]) == b"cde"
    import hashlib

    assert await store.sha256("2026/01/05/1-a.mp3") == hashlib.sha256(b"abcdefgh").hexdigest()
    assert await store.keys() == ["2026/01/05/1-a.mp3"]
    await store.delete("2026/01/05/1-a.mp3")
    assert await store.keys() == []
    with pytest.raises(UnsafePath):
        await store.put("../x", src, "audio/mpeg")
