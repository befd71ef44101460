"""Artefact storage behind one small interface: a local directory or an S3 bucket."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

CHUNK = 1 << 20


class StorageError(Exception):
    """A stored object is missing or the store cannot be reached."""


class Storage(Protocol):
    """What the backend needs from a blob store: put a file, know its size, read a byte range."""

    def put_file(self, key: str, path: Path) -> None: ...

    def size(self, key: str) -> int: ...

    def iter_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Yield bytes ``start..end`` inclusive."""
        ...

    def read_all(self, key: str) -> bytes: ...


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise StorageError(f"invalid storage key {key!r}")
    return key


class LocalStorage:
    """Files under one directory; writes go through a temp file and an atomic rename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put_file(self, key: str, path: Path) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out, path.open("rb") as src:
            shutil.copyfileobj(src, out, CHUNK)
        os.replace(tmp, dest)

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError as exc:
            raise StorageError(f"stored object {key!r} is missing from {self.root}") from exc

    def iter_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        try:
            fh: BinaryIO = self.path(key).open("rb")
        except FileNotFoundError as exc:
            raise StorageError(f"stored object {key!r} is missing from {self.root}") from exc
        with fh:
            fh.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = fh.read(min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk

    def read_all(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError as exc:
            raise StorageError(f"stored object {key!r} is missing from {self.root}") from exc


class S3Storage:
    """Objects in ``s3://bucket/prefix`` through boto3 (AWS, or a compatible endpoint)."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None) -> None:
        import boto3  # boto3 costs ~0.3 s to import; only S3 deployments pay it

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client: Any = boto3.client("s3", endpoint_url=endpoint_url)

    def _key(self, key: str) -> str:
        key = _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key))

    def _call(self, fn: Any, key: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, Key=self._key(key), **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"s3://{self.bucket}/{self._key(key)}: {exc}") from exc

    def size(self, key: str) -> int:
        return int(self._call(self.client.head_object, key)["ContentLength"])

    def iter_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        body = self._call(self.client.get_object, key, Range=f"bytes={start}-{end}")["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def read_all(self, key: str) -> bytes:
        return bytes(self._call(self.client.get_object, key)["Body"].read())


def open_storage(url: str, default_root: Path, endpoint_url: str | None = None) -> Storage:
    """``""`` or a path = local directory; ``s3://bucket/prefix`` = S3."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise StorageError(f"storage URL {url!r} names no bucket")
        return S3Storage(bucket, prefix, endpoint_url)
    return LocalStorage(Path(url) if url else default_root)
