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


def test_user_identity_is_signed_by_the_ca_with_its_groups(tmp_path: Path) -> None:
    import base64

    import yaml

    from localcluster import users

    certs.generate(tmp_path / "pki")
    processes.State("bin", {"apiserver": 6443}).save(tmp_path)
    path = users.create(tmp_path, "alice", ["sre", "dev"])
    assert path == tmp_path / "users" / "alice.kubeconfig"
    assert path.stat().st_mode & 0o077 == 0
    config = yaml.safe_load(path.read_text())
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    pem = base64.b64decode(config["users"][0]["user"]["client-certificate-data"])
    cert = x509.load_pem_x509_certificate(pem)
    ca = x509.load_pem_x509_certificate((tmp_path / "pki" / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [o.value for o in orgs] == ["sre", "dev"]


def test_user_cli_refuses_a_bad_name(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "localcluster", "user", "Bad/Name",
                             "--state-dir", str(tmp_path)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 1
    assert "user name 'Bad/Name'" in result.stderr
