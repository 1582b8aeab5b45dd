"""The storage backends: a local directory and an S3 bucket (moto's server) behave alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from recorder.storage import LocalStorage, ObjectStorage, S3Location, S3Storage, StorageError, segments
from tests.s3_server import S3Server, own_s3_server, s3_server  # noqa: F401  (fixtures)


@pytest.fixture(params=["local", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStorage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "objects")
        return
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = await S3Storage.open(server.location(prefix=tmp_path.name))
    try:
        yield bucket
    finally:
        await bucket.close()


async def test_put_read_ranges_list_delete(storage: ObjectStorage) -> None:
    await storage.put("20261125T080000Z-0123abcd/segment-000002", b"world")
    await storage.put("20261125T080000Z-0123abcd/segment-000001", b"hello ")
    await storage.put("20261125T080000Z-0123abcd/seal", b"{}")
    assert await storage.read("20261125T080000Z-0123abcd/segment-000001") == b"hello "
    assert await storage.read("20261125T080000Z-0123abcd/segment-000001", 1, 4) == b"ell"
    assert await storage.read("20261125T080000Z-0123abcd/segment-000002", 2) == b"rld"
    assert await storage.size("20261125T080000Z-0123abcd/segment-000002") == 5
    assert await storage.size("20261125T080000Z-0123abcd/nothing") is None
    assert await segments(storage, "20261125T080000Z-0123abcd") == [
        "20261125T080000Z-0123abcd/segment-000001", "20261125T080000Z-0123abcd/segment-000002"]
    assert len(await storage.list("20261125T080000Z-0123abcd/")) == 3
    await storage.delete("20261125T080000Z-0123abcd/seal")
    await storage.delete("20261125T080000Z-0123abcd/seal")  # nothing there: no error
    assert await storage.list("20261125T080000Z-0123abcd/") == [
        "20261125T080000Z-0123abcd/segment-000001", "20261125T080000Z-0123abcd/segment-000002"]
    with pytest.raises(FileNotFoundError):
        await storage.read("20261125T080000Z-0123abcd/seal")


async def test_a_bucket_that_does_not_answer_raises_storage_error(own_s3_server: S3Server) -> None:  # noqa: F811
    bucket = await S3Storage.open(own_s3_server.location(), timeout=2)
    try:
        await bucket.put("x/segment-000001", b"data")
        own_s3_server.stop()
        with pytest.raises(StorageError, match="did not answer"):
            await bucket.put("x/segment-000002", b"data")
    finally:
        await bucket.close()


def test_s3_urls() -> None:
    assert S3Location.parse("s3://my-bucket/deskgate/prod/") == S3Location("my-bucket", "deskgate/prod")
    assert S3Location.parse("s3://my-bucket").prefix == ""
    with pytest.raises(ValueError, match="not an S3 URL"):
        S3Location.parse("s3://My_Bucket/x")
