"""Where compressed recordings live: a local folder (default) or an S3-compatible bucket.

Keys are relative, slash-separated and made of safe characters only (`2026/01/05/12-att-7.mp3`);
a key that tries anything else is refused before any file system or network call, so no
request can name a file of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

from recordings.exceptions import StoreError, UnsafePath

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def check_key(key: str) -> str:
    parts = key.split("/")
    if not parts or any(not _SEGMENT.match(p) or p in (".", "..") for p in parts):
        raise UnsafePath(f"invalid storage key {key!r}")
    return key


class RecordingStore(Protocol):
    """What the pipeline, the API and the daily check need from a store."""

    description: str

    async def put(self, key: str, src: Path, content_type: str) -> None: ...

    async def sha256(self, key: str) -> str:
        """Re-read the stored object and hash it (raises StoreError when it is missing)."""
        ...

    async def size(self, key: str) -> int | None:
        """Size in bytes, None when the object does not exist."""
        ...

    def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes start..end inclusive, in chunks."""
        ...

    async def delete(self, key: str) -> None: ...

    async def keys(self) -> list[str]: ...


class LocalStore:
    """A folder; objects are files under `root/<key>`, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"local folder {root}"

    def path(self, key: str) -> Path:
        check_key(key)
        root = self.root.resolve()
        p = (root / key).resolve()
        if not p.is_relative_to(root):  # a symlink inside the store pointing out of it
            raise UnsafePath(f"storage key {key!r} leaves the store")
        return p

    def _put(self, key: str, src: Path) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with src.open("rb") as fin, tmp.open("wb") as fout:
                shutil.copyfileobj(fin, fout, CHUNK)
                fout.flush()
                os.fsync(fout.fileno())
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    async def put(self, key: str, src: Path, content_type: str) -> None:
        try:
            await asyncio.to_thread(self._put, key, src)
        except OSError as exc:
            raise StoreError(f"cannot write {key}: {exc}") from exc

    def _sha256(self, key: str) -> str:
        h = hashlib.sha256()
        with self.path(key).open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        return h.hexdigest()

    async def sha256(self, key: str) -> str:
        try:
            return await asyncio.to_thread(self._sha256, key)
        except OSError as exc:
            raise StoreError(f"cannot read {key}: {exc}") from exc

    async def size(self, key: str) -> int | None:
        p = self.path(key)
        try:
            return (await asyncio.to_thread(p.stat)).st_size
        except FileNotFoundError:
            return None

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        p = self.path(key)
        f = await asyncio.to_thread(p.open, "rb")
        try:
            await asyncio.to_thread(f.seek, start)
            left = end - start + 1
            while left > 0:
                block = await asyncio.to_thread(f.read, min(CHUNK, left))
                if not block:
                    break
                left -= len(block)
                yield block
        finally:
            await asyncio.to_thread(f.close)

    async def delete(self, key: str) -> None:
        p = self.path(key)
        await asyncio.to_thread(p.unlink, True)

    def _keys(self) -> list[str]:
        root = self.root.resolve()
        if not root.is_dir():
            return []
        out = []
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                if name.startswith("."):
                    continue  # in-flight temporary files
                out.append(Path(dirpath, name).relative_to(root).as_posix())
        return sorted(out)

    async def keys(self) -> list[str]:
        return await asyncio.to_thread(self._keys)


class S3Store:
    """An S3-compatible bucket through boto3 (optional extra `callcenter[s3]`).

    boto3 is synchronous; each call runs in a thread so the event loop never waits on it.
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.description = f"s3://{bucket}/{prefix}"

    @classmethod
    def connect(
        cls,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> S3Store:
        try:
            import boto3
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise StoreError("the S3 store needs boto3: pip install 'callcenter[s3]'") from exc
        client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        return cls(client, bucket, prefix)

    def _k(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def put(self, key: str, src: Path, content_type: str) -> None:
        full = self._k(key)

        def run() -> None:
            with src.open("rb") as f:
                self.client.put_object(
                    Bucket=self.bucket, Key=full, Body=f, ContentType=content_type
                )

        try:
            await asyncio.to_thread(run)
        except Exception as exc:
            raise StoreError(f"cannot upload {key}: {exc}") from exc

    async def sha256(self, key: str) -> str:
        def run() -> str:
            body = self.client.get_object(Bucket=self.bucket, Key=self._k(key))["Body"]
            h = hashlib.sha256()
            for block in body.iter_chunks(CHUNK):
                h.update(block)
            return h.hexdigest()

        try:
            return await asyncio.to_thread(run)
        except Exception as exc:
            raise StoreError(f"cannot read {key}: {exc}") from exc

    async def size(self, key: str) -> int | None:
        def run() -> int | None:
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=self._k(key))
            except Exception as exc:
                code = getattr(exc, "response", {}).get("Error", {}).get("Code")
                if code in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
            return int(head["ContentLength"])

        return await asyncio.to_thread(run)

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        obj = await asyncio.to_thread(
            self.client.get_object,
            Bucket=self.bucket,
            Key=self._k(key),
            Range=f"bytes={start}-{end}",
        )
        chunks = obj["Body"].iter_chunks(CHUNK)
        while True:
            block = await asyncio.to_thread(next, chunks, b"")
            if not block:
                break
            yield block

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=self._k(key))

    async def keys(self) -> list[str]:
        def run() -> list[str]:
            out: list[str] = []
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    out.append(item["Key"][len(self.prefix) :])
            return sorted(out)

        return await asyncio.to_thread(run)
