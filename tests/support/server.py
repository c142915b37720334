"""Run a real ``vecdb serve`` process for tests: port 0, the bound port read back from a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


class ServerProcess:
    """A ``vecdb serve`` subprocess over one data directory; restartable (graceful SIGTERM)."""

    def __init__(self, data_dir: Path, *extra_args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.extra_args = extra_args
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def uri(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        port_file = self.data_dir.parent / f"port-{os.getpid()}-{time.monotonic_ns()}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vecdb.cli", "serve", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
             "--port", "0", "--port-file", str(port_file), *self.extra_args],
            env=self.env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_file.exists() and port_file.read_text().strip():
                self.port = int(port_file.read_text().strip())
                self._wait_serving(deadline)
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"vecdb serve exited with {self.proc.returncode}")
            time.sleep(0.05)
        raise RuntimeError("vecdb serve did not report its port in time")

    def _wait_serving(self, deadline: float) -> None:
        """Block until the standard health service says SERVING (recovery finished)."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
        raise RuntimeError("vecdb serve did not become SERVING in time")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def restart(self) -> None:
        self.stop()
        self.start()
