"""A real S3 server on loopback for the tests: moto's standalone server (PyPI ``moto[server]``).

It stands in for AWS S3 or MinIO: the gateway talks to it over HTTP with aiobotocore exactly
as it would to them. Started as a child process so that a test can stop it (a bucket that
stops answering) and so that its request handling never runs on the test's event loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from recorder.storage import S3Location
from tests.functional.auth_helpers import free_port

BUCKET = "recordings"
ACCESS_KEY, SECRET_KEY = "deskgate-test", "deskgate-test-secret"


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]
    keys: tuple[Path, Path]

    def location(self, prefix: str = "rec") -> S3Location:
        return S3Location(BUCKET, prefix, endpoint=self.endpoint, region="us-east-1",
                          access_key_file=self.keys[0], secret_key_file=self.keys[1])

    def config(self, prefix: str = "rec") -> dict[str, object]:
        """The ``storage`` keys of a gateway config that keeps recordings in this server's bucket."""
        return {"recordings": f"s3://{BUCKET}/{prefix}",
                "s3": {"endpoint": self.endpoint, "region": "us-east-1", "access_key_file": str(self.keys[0]),
                       "secret_key_file": str(self.keys[1])}}

    def stop(self) -> None:
        """Stop answering (kill -9: connections are refused from now on)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def start_s3_server(workdir: Path) -> S3Server:
    """moto's S3 server on a free loopback port, with the bucket :data:`BUCKET` created."""
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT"), timeout=2)
            break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("moto's S3 server did not start") from None
            time.sleep(0.1)
    workdir.mkdir(parents=True, exist_ok=True)
    access, secret = workdir / "s3-access-key", workdir / "s3-secret-key"
    access.write_text(ACCESS_KEY)
    secret.write_text(SECRET_KEY)
    return S3Server(endpoint, process, (access, secret))


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_s3_server(tmp_path: Path) -> Iterator[S3Server]:
    """A server for one test only (which may stop it)."""
    server = start_s3_server(tmp_path / "s3")
    try:
        yield server
    finally:
        server.stop()
