"""TLS is always verified: a hospital CA bundle makes a private certificate acceptable, its
absence refuses it with a message naming the setting; the HTTPS proxy setting is used (CONNECT).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from backend.app import create_app
from core.sync.client import SyncClient
from core.sync.credentials import CredentialStore
from core.sync.errors import SyncConfigError, TlsError
from tests.backend.conftest import LiveServer, base_settings


def _cert(tmp: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for 127.0.0.1 signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hospital Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem, cert_pem, key_pem = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_pem, cert_pem, key_pem


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, LiveServer]]:
    tmp = tmp_path_factory.mktemp("tls")
    ca, cert, key = _cert(tmp)
    live = LiveServer(base_settings(tmp / "backend"), with_keys=False)
    config = uvicorn.Config(
        create_app(live.settings, live.state),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn (TLS) did not start"
        assert thread.is_alive(), "uvicorn (TLS) died"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"https://127.0.0.1:{port}", ca, live
    server.should_exit = True
    thread.join(15)
    live.state.engine.dispose()


class ConnectProxy:
    """An HTTPS (CONNECT) proxy on loopback that records the tunnels it opens."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(conn,), daemon=True).start()

    def _tunnel(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                conn.close()
                return
            head += chunk
        method, target = head.split(b" ", 2)[:2]
        if method != b"CONNECT":
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            conn.close()
            return
        self.tunnels.append(target.decode())
        host, port = target.decode().rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        with conn, upstream:
            while True:
                ready, _, _ = select.select([conn, upstream], [], [], 10)
                if not ready:
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (upstream if s is conn else conn).sendall(data)

    def close(self) -> None:
        self.sock.close()


def test_private_certificate_refused_without_ca_bundle(
    tls_server: tuple[str, Path, LiveServer],
) -> None:
    url, _ca, live = tls_server
    client = SyncClient(url, CredentialStore(url), timeout=5)
    with pytest.raises(TlsError, match=r"could not be verified.*sync\.ca_bundle"):
        client.enrol(live.enrol_code())
    assert CredentialStore(url).device() is None


def test_hospital_ca_bundle_accepted(tls_server: tuple[str, Path, LiveServer]) -> None:
    url, ca, live = tls_server
    client = SyncClient(url, CredentialStore(url), ca_bundle=str(ca), timeout=5)
    creds = client.enrol(live.enrol_code())
    assert client.access_token()
    client.close()
    assert CredentialStore(url).require_device() == creds


def test_https_proxy_is_used(tls_server: tuple[str, Path, LiveServer]) -> None:
    url, ca, live = tls_server
    proxy = ConnectProxy()
    try:
        client = SyncClient(url, CredentialStore(url), ca_bundle=str(ca), https_proxy=proxy.url)
        client.enrol(live.enrol_code())
        client.close()
        assert proxy.tunnels
        assert proxy.tunnels[0] == url.removeprefix("https://")
    finally:
        proxy.close()


def test_bad_settings_named(tmp_path: Path) -> None:
    with pytest.raises(SyncConfigError, match="does not exist"):
        SyncClient("https://sync.example", ca_bundle=str(tmp_path / "missing.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(SyncConfigError, match="not a PEM certificate bundle"):
        SyncClient("https://sync.example", ca_bundle=str(junk))
    with pytest.raises(SyncConfigError, match="not an http"):
        SyncClient("https://sync.example", https_proxy="socks9://x")
    with pytest.raises(SyncConfigError, match="plain http"):
        SyncClient("http://sync.example")
