"""Client-certificate identities for tests of permissions and approvals.

`python -m localcluster user alice --group sre` signs a certificate with
CN=alice and O=sre by the cluster's CA: the API server authenticates it as
user alice in group sre (plus system:authenticated), with no rights at all
until RBAC grants some. No impersonation: the code under test talks to the
API server as that user, the way a pipeline's own identity would.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from localcluster import certs
from localcluster.errors import ClusterSetupError
from localcluster.processes import State

_NAME = re.compile(r"[a-z0-9]([-a-z0-9.@]*[a-z0-9])?")


def users_dir(state_dir: Path) -> Path:
    return state_dir / "users"


def create(state_dir: Path, name: str, groups: list[str]) -> Path:
    """Write <state-dir>/users/NAME.kubeconfig (the key inside, mode 0600); its path."""
    if not _NAME.fullmatch(name):
        raise ClusterSetupError(f"user name {name!r}: lowercase letters, digits, '-', '.', '@'")
    state = State.load(state_dir)
    if state is None:
        raise ClusterSetupError(f"no local cluster in {state_dir}: run `up` first")
    cert, key = _issue(state_dir / "pki", name, groups)
    path = users_dir(state_dir) / f"{name}.kubeconfig"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(_kubeconfig(state_dir, state.ports["apiserver"], name, cert, key))
    return path


def _issue(pki: Path, name: str, groups: list[str]) -> tuple[bytes, bytes]:
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    # Kubernetes reads CN as the user name and every O as a group.
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]
                        + [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups])
    cert = (
        certs._builder(subject, ca.subject, key.public_key())
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


def _kubeconfig(state_dir: Path, port: int, name: str, cert: bytes, key: bytes) -> str:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"""apiVersion: v1
kind: Config
clusters:
- name: runplan-local
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority: {state_dir.resolve() / "pki" / "ca.crt"}
users:
- name: {name}
  user:
    client-certificate-data: {b64(cert)}
    client-key-data: {b64(key)}
contexts:
- name: {name}@runplan-local
  context: {{cluster: runplan-local, user: {name}, namespace: default}}
current-context: {name}@runplan-local
"""
