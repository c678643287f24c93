"""TLS for the Salesforce emulator: a self-signed certificate for 127.0.0.1 and a TLS front.

simple-salesforce always builds ``https://`` URLs, while the sandbox server speaks plain HTTP. The
emulator therefore starts a small TLS terminator next to its plain port: every accepted TLS
connection is relayed byte for byte to the plain port, so keep-alive, fault timing (drops,
timeouts) and statistics stay the server's. The certificate is its own CA (``ca_bundle`` in the
emulator's settings), valid for ``127.0.0.1`` and ``localhost``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import select
import shutil
import socket
import ssl
import tempfile
import threading
from pathlib import Path

__all__ = ["TlsFront", "make_certificate"]


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` (self-signed, CA:true, SAN 127.0.0.1/localhost) into ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "factoryline sandbox")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=True, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _relay(tls: ssl.SSLSocket, plain: socket.socket) -> None:
    """Relay both ways on one thread (an SSL object must not be read and written concurrently)."""
    peers = {tls: plain, plain: tls}
    try:
        while True:
            ready = [tls] if tls.pending() else select.select([tls, plain], [], [])[0]
            for src in ready:
                data = src.recv(65536)
                if not data:
                    return
                peers[src].sendall(data)
    except (OSError, ValueError):
        return
    finally:
        for sock in (tls, plain):
            with contextlib.suppress(OSError, ValueError):
                sock.shutdown(socket.SHUT_RDWR)


class TlsFront:
    """Accept TLS on 127.0.0.1:<port> and relay every connection to a plain ``backend_port``."""

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self._dir = Path(tempfile.mkdtemp(prefix="sandbox-salesforce-tls-"))
        self.cert_path, key_path = make_certificate(self._dir)
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.load_cert_chain(self.cert_path, key_path)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.settimeout(0.25)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, name="sandbox-salesforce-tls", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            conn = self._ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        conn.settimeout(None)
        try:
            back = socket.create_connection(("127.0.0.1", self.backend_port))
        except OSError:
            conn.close()
            return
        for s in (raw, back):
            with contextlib.suppress(OSError):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._open.update((conn, back))
        _relay(conn, back)
        with self._lock:
            self._open.difference_update((conn, back))
        for s in (conn, back):
            with contextlib.suppress(OSError):
                s.close()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            socks = list(self._open)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=2)
        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)
