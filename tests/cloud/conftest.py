"""An S3 API endpoint started by the tests (moto's standalone server on 127.0.0.1), as s3fs's
own test suite does: nothing leaves the machine. The fixture points botocore at it through the
environment (``AWS_ENDPOINT_URL``) and gives a fresh bucket per test."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def _s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(_s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """``(bucket, filesystem)``: a new bucket on the test endpoint and an s3fs filesystem on it."""
    import s3fs

    monkeypatch.setenv("AWS_ENDPOINT_URL", _s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3fs.S3FileSystem.clear_instance_cache()
    filesystem = s3fs.S3FileSystem()
    bucket = f"sclc-{uuid.uuid4().hex[:12]}"
    filesystem.mkdir(bucket)
    yield bucket, filesystem
    s3fs.S3FileSystem.clear_instance_cache()
