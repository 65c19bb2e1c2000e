"""runplan's kubeconfig reading (runner/kube/kubeconfig.py) against the client's
own `KubeConfigLoader`: the same kubeconfig gives the same settings.

One case per shape users have: token, client certificate from files (relative
to the kubeconfig) or from data, a CA, TLS options, a proxy, a user missing
from the file. Cases the fast path hands to the client (token file, basic
auth) must come out the same too. Files hold arbitrary bytes: neither loader
parses certificates, both point the client at files holding them.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.configuration import Configuration
from kubernetes.config import kube_config

from runner.kube.kubeconfig import load

CA, CERT, KEY = b"ca-bytes\n", b"cert-bytes\n", b"key-bytes\n"


def b64(data: bytes) -> str:
    return base64.standard_b64encode(data).decode()


CASES: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "token, insecure": ({"server": "https://k:6443/", "insecure-skip-tls-verify": True},
                        {"token": "t0k"}),
    "token, CA file": ({"server": "https://k:6443", "certificate-authority": "pki/ca.crt"},
                       {"token": "t0k"}),
    "client cert files": ({"server": "https://k:6443", "certificate-authority": "pki/ca.crt",
                           "tls-server-name": "api.k"},
                          {"client-certificate": "pki/c.crt", "client-key": "pki/c.key"}),
    "client cert data": ({"server": "https://k:6443", "certificate-authority-data": b64(CA),
                          "proxy-url": "http://127.0.0.1:3128"},
                         {"client-certificate-data": b64(CERT), "client-key-data": b64(KEY)}),
    "data wins over file": ({"server": "https://k:6443", "certificate-authority": "missing",
                             "certificate-authority-data": b64(CA)}, {"token": "t0k"}),
    "plain http": ({"server": "http://127.0.0.1:8080", "certificate-authority": "missing"},
                   {"token": "t0k"}),
    "no user": ({"server": "https://k:6443", "insecure-skip-tls-verify": False}, None),
    "token file (client's loader)": ({"server": "https://k:6443"}, {"tokenFile": "pki/token"}),
    "basic auth (client's loader)": ({"server": "https://k:6443"},
                                     {"username": "u", "password": "p"}),
}


def kubeconfig(tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any] | None) -> str:
    (tmp_path / "pki").mkdir()
    for name, data in {"ca.crt": CA, "c.crt": CERT, "c.key": KEY, "token": b"file-t0k"}.items():
        (tmp_path / "pki" / name).write_bytes(data)
    context = {"cluster": "c", **({"user": "u"} if user is not None else {})}
    doc = {"current-context": "x", "contexts": [{"name": "x", "context": context}],
           "clusters": [{"name": "c", "cluster": cluster}],
           "users": [{"name": "u", "user": user}] if user is not None else []}
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def settings(configuration: Configuration) -> dict[str, Any]:
    found: dict[str, Any] = {key: getattr(configuration, key) for key in
                             ("host", "verify_ssl", "tls_server_name", "proxy")}
    found["auth"] = configuration.auth_settings()
    for key in ("ssl_ca_cert", "cert_file", "key_file"):
        path = getattr(configuration, key)
        found[key] = Path(path).read_bytes() if path else None
    return found


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_same_settings_as_the_clients_loader(tmp_path: Path,
                                             case: tuple[dict[str, Any], Any]) -> None:
    path = kubeconfig(tmp_path, *case)
    official = Configuration()
    kube_config.load_kube_config(config_file=path, client_configuration=official)
    ours = load(path, environ={}).configuration
    assert settings(ours) == settings(official)
    assert ours.host == official.host != Configuration().host


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    from runner.errors import ClusterUnreachable

    path = kubeconfig(tmp_path, {"server": "https://k:6443", "certificate-authority": "nope"},
                      {"token": "t"})
    with pytest.raises(ClusterUnreachable, match=r"context x: File does not exist: .*nope"):
        load(path, environ={})
