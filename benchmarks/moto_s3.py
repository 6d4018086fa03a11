"""moto's S3 server on 127.0.0.1 for the benchmarks that measure the lake on S3."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def moto_s3(bucket: str, verbose: bool = False) -> Iterator[None]:
    """The server started and made this process's AWS endpoint, with `bucket` created; stopped afterwards. `verbose`:
    it logs each request through werkzeug's logger."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=verbose)
    server.start()
    try:
        host, port = server.get_host_and_port()
        os.environ.update(
            AWS_ENDPOINT_URL=f"http://{host}:{port}",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
        )
        import boto3

        boto3.client("s3").create_bucket(Bucket=bucket)
        yield
    finally:
        server.stop()
