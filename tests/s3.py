"""A local S3-compatible server for tests and the Delta demo: moto's server on 127.0.0.1.

moto runs as a subprocess (``python -m moto.server``), not as ``ThreadedMotoServer`` in the
test process: delta-rs holds the GIL while it waits on some requests (``DeltaTable.history``
here), so an in-process server thread never answers and the call times out after minutes.
moto enforces ``If-None-Match: *`` on PutObject (412 when the key exists), which is the
conditional put delta-rs uses on S3 to make each table version once; no locking provider
(DynamoDB) is needed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

BUCKET = "sluice-test"
KEY_ID = "testing"
SECRET = "testing"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    """A running local S3 server: its endpoint and the environment its clients need."""

    endpoint: str
    bucket: str

    def env(self) -> dict[str, str]:
        """Variables delta-rs, polars and boto3 read to reach this server (never a real AWS)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def s3_server(bucket: str = BUCKET, timeout: float = 30.0) -> Iterator[S3Server]:
    """Start moto's S3 server on 127.0.0.1, make ``bucket``, stop the server on exit."""
    import boto3

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's S3 server did not start on port {port}") from None
                time.sleep(0.1)
        server = S3Server(f"http://127.0.0.1:{port}", bucket)
        client = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            region_name=REGION,
        )
        client.create_bucket(Bucket=bucket)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
