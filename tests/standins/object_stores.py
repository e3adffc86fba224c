"""Local object stores for the recordings' storage tests: Azure Blob and S3 at the wire.

Recordings go through django-storages to Azure Blob (``azure-storage-blob``) or S3 (boto3)
in production. Here the same SDKs talk to Azurite, Microsoft's own Azure Storage emulator
(from npm: ``make azurite`` installs it into ``tests/standins/azurite``), and to moto's S3
server (a dev dependency), each started on a free loopback port for one test and stopped
after it. Nothing here fakes the SDKs: every request is real HTTP with real signatures.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.servers import free_port, listening

AZURITE = Path(__file__).with_name("azurite") / "node_modules" / ".bin" / "azurite-blob"
# Azurite's development account: its well-known name and key, published by Microsoft for
# the emulator (they open nothing else).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
CONTAINER = "callsite-recordings"


def azurite_installed() -> bool:
    return AZURITE.exists()


def _wait(port: int, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 30
    while not listening(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{what} did not listen on {port}:\n{log.read_text()}")
        time.sleep(0.05)


@contextmanager
def azurite_blob() -> Iterator[dict[str, Any]]:
    """Azurite's Blob service, in memory, with the recordings' container: the environment
    that points Callsite's recordings at it (``CALLSITE_RECORDINGS_*``)."""
    from azure.storage.blob import BlobServiceClient

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="azurite-") as workspace:
        log = Path(workspace) / "azurite.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    str(AZURITE),
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    str(port),
                    "--inMemoryPersistence",
                    "--skipApiVersionCheck",
                    "--silent",
                ],
                cwd=workspace,  # nothing is written, but should it be: not in the checkout
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait(port, process, log, "Azurite")
            connection = (
                "DefaultEndpointsProtocol=http;"
                f"AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
            )
            BlobServiceClient.from_connection_string(connection).create_container(CONTAINER)
            yield {
                "CALLSITE_RECORDINGS_STORAGE": "azure",
                "CALLSITE_RECORDINGS_CONTAINER": CONTAINER,
                "CALLSITE_RECORDINGS_AZURE_CONNECTION_STRING": connection,
            }
        finally:
            # In memory, nothing to keep; on SIGTERM it waits for idle keep-alive sockets.
            process.kill()
            process.wait()


@contextmanager
def s3_server() -> Iterator[dict[str, Any]]:
    """moto's S3 server with the recordings' bucket: the environment that points Callsite's
    recordings at it. boto3 reads its credentials from the process environment, as it does
    in production (the test's keys are moto's own: it takes any)."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = "callsite-test"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "callsite-test-secret"  # moto takes any
    try:
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=CONTAINER
        )
        yield {
            "CALLSITE_RECORDINGS_STORAGE": "s3",
            "CALLSITE_RECORDINGS_CONTAINER": CONTAINER,
            "CALLSITE_RECORDINGS_S3_ENDPOINT_URL": endpoint,
            "CALLSITE_RECORDINGS_S3_REGION": "us-east-1",
        }
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
