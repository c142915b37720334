"""Fixtures of the gRPC tests: an in-process server over a fake database, and a real `vecdb serve`.

``grpc_server`` (session scope) yields the ``grpc://`` URI of a real ``vecdb serve`` subprocess on
port 0; other suites may reuse it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.rpc.fakes import FakeDatabase
from vecdb.rpc.server import ServerSettings, VecdbServer


@dataclass
class InProcess:
    """A started in-process server and the fake database behind it."""

    server: VecdbServer
    db: FakeDatabase

    @property
    def uri(self) -> str:
        return f"grpc://127.0.0.1:{self.server.port}"


@pytest.fixture
def start_server() -> Iterator[Callable[..., InProcess]]:
    """Factory: start a VecdbServer on port 0 over a FakeDatabase with the given settings."""
    started: list[VecdbServer] = []

    def start(**settings: Any) -> InProcess:
        db = FakeDatabase()
        options = {"data_dir": ":memory:", "port": 0, "grace_seconds": 2.0, **settings}
        server = VecdbServer(ServerSettings(**options), open_database=lambda _p: db)
        server.start()
        started.append(server)
        return InProcess(server, db)

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def fake_server(start_server: Callable[..., InProcess]) -> InProcess:
    """An open (no API keys) in-process server over a FakeDatabase."""
    return start_server()


@pytest.fixture(scope="session")
def grpc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URI of a real `vecdb serve` subprocess (port 0) over a fresh data directory."""
    from tests.support.server import ServerProcess

    server = ServerProcess(tmp_path_factory.mktemp("grpc-server") / "data")
    server.start()
    try:
        yield server.uri
    finally:
        server.stop()


@dataclass(frozen=True)
class TLSFiles:
    """PEM files of a throwaway CA, a server cert for localhost/127.0.0.1, and a client cert."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _certificate(subject: str, key: Any, issuer_name: Any, issuer_key: Any, *, ca: bool, san: bool) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


def _openssl_files(out: Path) -> TLSFiles:
    """The same certificates made with the openssl CLI (when `cryptography` is not installed)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("neither the cryptography package nor the openssl CLI is available")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=out)

    ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec_key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=vecdb test CA")
    (out / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, subject, ext in (("server", "/CN=localhost", ["-extfile", "san.ext"]), ("client", "/CN=client", [])):
        run("req", *ec_key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "1",
            *ext,
        )
    return TLSFiles(out / "ca.crt", out / "server.crt", out / "server.key", out / "client.crt", out / "client.key")


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """Generate a CA, a server and a client certificate: `cryptography` if installed, else openssl."""
    out = tmp_path_factory.mktemp("tls")
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        return _openssl_files(out)

    def write(name: str, cert: Any, key: Any) -> tuple[Path, Path]:
        cert_path, key_path = out / f"{name}.crt", out / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_path, key_path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("vecdb test CA", ca_key, None, None, ca=True, san=False)
    ca_path, _ = write("ca", ca_cert, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _certificate("localhost", server_key, ca_cert.subject, ca_key, ca=False, san=True)
    s_cert, s_key = write("server", server_cert, server_key)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _certificate("vecdb client", client_key, ca_cert.subject, ca_key, ca=False, san=False)
    c_cert, c_key = write("client", client_cert, client_key)
    return TLSFiles(ca_path, s_cert, s_key, c_cert, c_key)
