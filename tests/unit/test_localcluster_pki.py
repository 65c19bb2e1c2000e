"""The local cluster's PKI and process bookkeeping (no cluster needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from localcluster import certs, processes


def test_pki_chain_and_serving_names(tmp_path: Path) -> None:
    certs.generate(tmp_path)
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    serving = x509.load_pem_x509_certificate((tmp_path / "apiserver.crt").read_bytes())
    admin = x509.load_pem_x509_certificate((tmp_path / "admin.crt").read_bytes())
    serving.verify_directly_issued_by(ca)
    admin.verify_directly_issued_by(ca)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        certs.API_SERVICE_IP,
    }
    orgs = admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [o.value for o in orgs] == ["system:masters"]
    assert (tmp_path / "admin.key").stat().st_mode & 0o077 == 0


def test_free_port_is_loopback_bindable() -> None:
    import socket

    port = processes.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_stop_never_kills_a_process_that_is_not_ours(tmp_path: Path) -> None:
    # A PID recorded by a crashed run may since belong to someone else.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert processes.stop({"etcd": other.pid}, str(tmp_path / "bin")) == []
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
