"""Where finished and live recordings are kept: a local directory, or an S3-compatible bucket.

Both backends hold opaque objects under keys and implement the same four operations:
:meth:`~ObjectStorage.put`, :meth:`~ObjectStorage.read` (with a byte range, for HTTP Range),
:meth:`~ObjectStorage.list` and :meth:`~ObjectStorage.delete`.

Object layout of one recording (``prefix/`` is the URL's path, ``ID`` its session id)::

    prefix/ID/segment-000001   the journal's bytes, cut at record boundaries; concatenated
    prefix/ID/segment-000002   in order they are the journal (a segment may be re-put)
    prefix/ID/seal             the seal (recorder.seal), written last, at close
    prefix/ID/video.mp4        the rendered video and its poster (exports)
    prefix/ID/poster.jpg
    prefix/ID/clip-CLIP.mp4    clips reviewers exported

A journal is written to the node's local spool first (:mod:`recorder.writer`) and uploaded
in segments while the session runs (:mod:`recorder.upload`).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

SEGMENT_RE = re.compile(r"^segment-(\d{6})$", re.ASCII)
SEAL = "seal"
VIDEO = "video.mp4"
POSTER = "poster.jpg"


def clip_key(recording_id: str, clip_id: str) -> str:
    """Where an exported clip of the recording is kept: ``ID/clip-CLIP.mp4``."""
    return f"{recording_id}/clip-{clip_id}.mp4"
#: How long one request to the bucket may take before it counts as failed.
REQUEST_TIMEOUT = 10.0


class StorageError(Exception):
    """The storage did not answer, or refused; the message says which object and why."""


def segment_name(number: int) -> str:
    return f"segment-{number:06d}"


class ObjectStorage(Protocol):
    """Objects under keys ``ID/name``; every method raises :class:`StorageError` when the storage fails."""

    @property
    def remote(self) -> bool:
        """Whether the objects live outside this node (a bucket), so every node can read them."""
        ...

    async def put(self, key: str, data: bytes) -> None: ...

    async def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive; None: to the end); FileNotFoundError if there is no object."""
        ...

    async def size(self, key: str) -> int | None:
        """The object's size, None when there is none."""
        ...

    async def list(self, prefix: str) -> list[str]:
        """The keys under ``prefix``, sorted."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; nothing happens if there is none."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class S3Location:
    """``storage.recordings: s3://bucket/prefix`` and ``storage.s3``; None fields: the AWS variables decide."""

    bucket: str
    prefix: str
    endpoint: str | None = None
    region: str | None = None
    access_key_file: Path | None = None
    secret_key_file: Path | None = None

    @classmethod
    def parse(cls, url: str, **options: Any) -> S3Location:
        """``s3://bucket/prefix``; ValueError naming what is wrong."""
        match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?", url)
        if match is None:
            raise ValueError(f"{url!r} is not an S3 URL; write s3://BUCKET/PREFIX (a bucket name in lower case)")
        return cls(match.group(1), (match.group(2) or "").strip("/"), **options)


class LocalStorage:
    """Objects as files under ``root`` (``root/ID/name``), written atomically."""

    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = self.root / key
        if ".." in Path(key).parts or Path(key).is_absolute():
            raise ValueError(f"not an object key: {key!r}")
        return path

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, self._path(key), data)

    @staticmethod
    def _put(path: Path, data: bytes) -> None:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            temporary = path.with_name(path.name + ".tmp")
            with open(temporary, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc

    async def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        return await asyncio.to_thread(self._read, self._path(key), start, end)

    @staticmethod
    def _read(path: Path, start: int, end: int | None) -> bytes:
        with open(path, "rb") as file:
            file.seek(start)
            return file.read(-1 if end is None else max(0, end - start))

    async def size(self, key: str) -> int | None:
        try:
            return (await asyncio.to_thread(self._path(key).stat)).st_size
        except FileNotFoundError:
            return None

    async def list(self, prefix: str) -> list[str]:
        def walk() -> list[str]:
            base = self._path(prefix) if prefix else self.root
            if not base.is_dir():
                return []
            return sorted(str(path.relative_to(self.root)) for path in base.rglob("*")
                          if path.is_file() and not path.name.endswith(".tmp"))
        return await asyncio.to_thread(walk)

    async def delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(self._path(key).unlink)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"cannot delete {key}: {exc.strerror or exc}") from exc

    async def close(self) -> None:
        pass


class S3Storage:
    """Objects in an S3-compatible bucket (AWS S3, MinIO, …) through aiobotocore; keys under the URL's prefix."""

    remote = True

    def __init__(self, location: S3Location, client: Any, exit_stack: Any) -> None:
        self.location = location
        self._client = client
        self._exit = exit_stack

    @classmethod
    async def open(cls, location: S3Location, *, timeout: float = REQUEST_TIMEOUT) -> S3Storage:
        """A client for ``location``; credentials from the key files, else the standard AWS variables."""
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        options: dict[str, Any] = {}
        if location.endpoint:
            options["endpoint_url"] = location.endpoint
        if location.region:
            options["region_name"] = location.region
        if location.access_key_file and location.secret_key_file:
            options["aws_access_key_id"] = location.access_key_file.read_text().strip()
            options["aws_secret_access_key"] = location.secret_key_file.read_text().strip()
        config = AioConfig(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1})
        session = get_session()
        await asyncio.to_thread(_load_models, session)
        context = session.create_client("s3", config=config, **options)
        client = await context.__aenter__()
        return cls(location, client, context)

    def _key(self, key: str) -> str:
        return f"{self.location.prefix}/{key}" if self.location.prefix else key

    async def _call(self, what: str, key: str, operation: Any, **arguments: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await operation(Bucket=self.location.bucket, **arguments)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(key) from None
            raise StorageError(f"the bucket {self.location.bucket} refused to {what} {key}: {code or exc}") from exc
        except (BotoCoreError, OSError, asyncio.TimeoutError) as exc:
            raise StorageError(f"the bucket {self.location.bucket} did not answer ({what} {key}): {exc}") from exc

    async def put(self, key: str, data: bytes) -> None:
        await self._call("write", key, self._client.put_object, Key=self._key(key), Body=data)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        arguments: dict[str, Any] = {"Key": self._key(key)}
        if start or end is not None:
            if end is not None and end <= start:
                return b""
            arguments["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        response = await self._call("read", key, self._client.get_object, **arguments)
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data

    async def size(self, key: str) -> int | None:
        try:
            response = await self._call("look up", key, self._client.head_object, Key=self._key(key))
        except FileNotFoundError:
            return None
        return int(response["ContentLength"])

    async def list(self, prefix: str) -> list[str]:
        full = self._key(prefix)
        keys: list[str] = []
        token: dict[str, Any] = {}
        strip = len(self.location.prefix) + 1 if self.location.prefix else 0
        while True:
            response = await self._call("list", prefix, self._client.list_objects_v2, Prefix=full, **token)
            keys.extend(item["Key"][strip:] for item in response.get("Contents", []))
            if not response.get("IsTruncated"):
                return sorted(keys)
            token = {"ContinuationToken": response["NextContinuationToken"]}

    async def delete(self, key: str) -> None:
        await self._call("delete", key, self._client.delete_object, Key=self._key(key))

    async def close(self) -> None:
        await self._exit.__aexit__(None, None, None)


def _load_models(session: Any) -> None:
    """Parse botocore's S3 model files into the session's cache, in a thread: over 100 ms of CPU."""
    loader = session.get_component("data_loader")
    for kind in ("service-2", "endpoint-rule-set-1", "paginators-1"):
        loader.load_service_model("s3", kind)
    for name in ("endpoints", "partitions", "sdk-default-configuration", "_retry"):
        loader.load_data(name)


async def segments(storage: ObjectStorage, recording_id: str) -> list[str]:
    """The recording's segment keys, in order."""
    names = [key.split("/", 1)[1] for key in await storage.list(f"{recording_id}/")]
    return [f"{recording_id}/{name}" for name in sorted(name for name in names if SEGMENT_RE.fullmatch(name))]


async def download_journal(storage: ObjectStorage, recording_id: str, journal: Path) -> bool:
    """Write the recording's segments (concatenated) and seal to ``journal`` and its seal; False: none stored."""
    keys = await segments(storage, recording_id)
    if not keys:
        return False
    parts: Sequence[bytes] = [await storage.read(key) for key in keys]
    try:
        seal: bytes | None = await storage.read(f"{recording_id}/{SEAL}")
    except FileNotFoundError:
        seal = None
    await asyncio.to_thread(_write_local, journal, b"".join(parts), seal)
    return True


def _write_local(journal: Path, data: bytes, seal: bytes | None) -> None:
    journal.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = journal.with_name(journal.name + ".download")
    temporary.write_bytes(data)
    os.replace(temporary, journal)
    seal_file = journal.with_name(journal.name + ".seal")
    if seal is None:
        seal_file.unlink(missing_ok=True)
    else:
        seal_file.write_bytes(seal)
