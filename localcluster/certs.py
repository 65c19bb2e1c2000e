"""A throwaway PKI for the local control plane: CA, serving cert, one admin client.

Every component talks to the API server as the admin (system:masters): this
cluster exists for tests on loopback, so one identity keeps the moving parts few.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

API_SERVICE_IP = "10.96.0.1"  # first address of --service-cluster-ip-range
SERVING_DNS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


def _name(common_name: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(subject: x509.Name, issuer: x509.Name, public_key, days: int = 30):
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def generate(pki: Path) -> None:
    """Write ca, apiserver (serving), admin (client) and the service-account key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("runplan-localcluster-ca")
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), days=365)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(pki / "ca.key", ca_key)
    _write_cert(pki / "ca.crt", ca)
    _issue(pki, "apiserver", _name("kube-apiserver"), ca, ca_key, serving=True)
    _issue(pki, "admin", _name("runplan-admin", "system:masters"), ca, ca_key, serving=False)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki / "sa.key", sa_key)
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _issue(pki: Path, stem: str, subject: x509.Name, ca, ca_key, serving: bool) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if serving else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = _builder(subject, ca.subject, key.public_key()).add_extension(
        x509.ExtendedKeyUsage([usage]), critical=False
    )
    if serving:
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in SERVING_DNS]
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", API_SERVICE_IP)]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    _write_key(pki / f"{stem}.key", key)
    _write_cert(pki / f"{stem}.crt", builder.sign(ca_key, hashes.SHA256()))
