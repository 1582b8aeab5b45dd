"""``storage`` keys for object storage, jobs and retention: defaults, parsing, and readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from base.errors import ConfigError
from gateway.config import load_config
from recorder.storage import S3Location
from tests.gateway.test_config import write


def test_a_directory_keeps_todays_behaviour_and_the_defaults_are_safe(tmp_path: Path) -> None:
    storage = load_config(write(tmp_path, "storage: {recordings: recs}\n")).storage
    assert storage.recordings == tmp_path / "recs" and storage.s3 is None
    assert (storage.segment_bytes, storage.segment_interval, storage.upload_deadline) == (8 << 20, 10.0, 60.0)
    assert storage.retention is None and storage.workers and storage.job_lease == 30.0


def test_a_bucket_writes_to_the_spool_and_uploads(tmp_path: Path) -> None:
    storage = load_config(write(tmp_path, """\
        storage:
          recordings: s3://deskgate-recordings/prod/
          s3: {endpoint: "http://127.0.0.1:9000", region: ap-northeast-1, access_key_file: ak, secret_key_file: sk}
          segment_bytes: 1048576
          segment_interval: 5s
          upload_deadline: 30s
          retention: 180d
          workers: false
        """)).storage
    assert storage.recordings == tmp_path / "var/spool"
    assert storage.s3 == S3Location("deskgate-recordings", "prod", "http://127.0.0.1:9000", "ap-northeast-1",
                                    tmp_path / "ak", tmp_path / "sk")
    assert (storage.segment_bytes, storage.segment_interval, storage.upload_deadline) == (1 << 20, 5.0, 30.0)
    assert storage.retention == 180 * 86400 and not storage.workers
    aws_variables = load_config(write(tmp_path, "storage: {recordings: 's3://b-1', spool: /srv/spool}\n")).storage
    assert aws_variables.s3 == S3Location("b-1", "") and aws_variables.recordings == Path("/srv/spool")


@pytest.mark.parametrize(("text", "message"), [
    ("storage: {recordings: 's3://Bad_Bucket/x'}", "storage.recordings: 's3://Bad_Bucket/x' is not an S3 URL"),
    ("storage: {recordings: 's3://b-1', s3: {access_key_file: ak}}", "give both access_key_file and secret_key"),
    ("storage: {recordings: recs, s3: {region: x}}", "storage.s3: is set but storage.recordings is a directory"),
    ("storage: {retention: forever}", "storage.retention: 'forever' is not a duration"),
    ("storage: {segment_bytes: 0}", "storage.segment_bytes: must be a positive number of bytes"),
])
def test_mistakes_are_explained(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("'", "'")):
        load_config(write(tmp_path, text + "\n"))
