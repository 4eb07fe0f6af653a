"""TLS and mutual TLS from the configuration, with certificates made here."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc import aio

from batchgrpc import server
from batchgrpc.config import TlsConfig
from batchgrpc.track.v2 import tracking_pb2, tracking_pb2_grpc

from ..conftest import make_config


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: str, issuer_key: ec.EllipticCurvePrivateKey | None, issuer: str | None, *, ca: bool = False
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer or subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return key, builder.sign(issuer_key or key, hashes.SHA256())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclasses.dataclass
class Pki:
    ca: bytes
    server_cert: Path
    server_key: Path
    client_ca: Path
    client_cert: bytes
    client_key: bytes


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca_key, ca_cert = _issue("batchgrpc test CA", None, None, ca=True)
    server_key, server_cert = _issue("localhost", ca_key, "batchgrpc test CA")
    client_key, client_cert = _issue("client", ca_key, "batchgrpc test CA")
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "server.pem").write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(_pem(server_key))
    (tmp_path / "ca.pem").write_bytes(ca_pem)
    return Pki(
        ca=ca_pem,
        server_cert=tmp_path / "server.pem",
        server_key=tmp_path / "server.key",
        client_ca=tmp_path / "ca.pem",
        client_cert=client_cert.public_bytes(serialization.Encoding.PEM),
        client_key=_pem(client_key),
    )


async def _system_time(port: int, credentials: grpc.ChannelCredentials, token: str) -> float:
    async with aio.secure_channel(f"localhost:{port}", credentials) as channel:
        stub = tracking_pb2_grpc.TrackingServiceStub(channel)
        response = await stub.GetSystemTime(
            tracking_pb2.GetSystemTimeRequest(project_token="default"),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=5,
        )
        return response.time


async def test_tls(tmp_path: Path, pki: Pki) -> None:
    tls = TlsConfig(cert_file=pki.server_cert, key_file=pki.server_key)
    running = await server.start(make_config(tmp_path / "data", tls=tls))
    try:
        assert running.first_admin_key is not None
        token = running.first_admin_key.token
        assert await _system_time(running.port, grpc.ssl_channel_credentials(pki.ca), token) > 0
        # A plaintext client cannot talk to a TLS server.
        async with aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            with pytest.raises(aio.AioRpcError) as caught:
                await tracking_pb2_grpc.TrackingServiceStub(channel).GetSystemTime(
                    tracking_pb2.GetSystemTimeRequest(project_token="default"), timeout=5
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(running, 0)


async def test_mutual_tls_requires_a_client_certificate(tmp_path: Path, pki: Pki) -> None:
    tls = TlsConfig(cert_file=pki.server_cert, key_file=pki.server_key, client_ca_file=pki.client_ca)
    running = await server.start(make_config(tmp_path / "data", tls=tls))
    try:
        assert running.first_admin_key is not None
        token = running.first_admin_key.token
        with_cert = grpc.ssl_channel_credentials(pki.ca, private_key=pki.client_key, certificate_chain=pki.client_cert)
        assert await _system_time(running.port, with_cert, token) > 0
        with pytest.raises(aio.AioRpcError) as caught:
            await _system_time(running.port, grpc.ssl_channel_credentials(pki.ca), token)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(running, 0)
