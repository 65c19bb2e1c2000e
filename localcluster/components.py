"""What each control-plane component is started with: its flags, the files it reads
(kubeconfig, Corefile, audit policy), the address ranges of the cluster.

Pure configuration: writing these files and building these argv lists starts
nothing; localcluster/cluster.py starts the processes in `COMPONENTS` order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from localcluster import stages

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"
NODE_ANNOTATION = "kwok.x-k8s.io/node"
COMPONENTS = (  # in start order: each one after those it needs
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "coredns",
)


def audit_log_path(state_dir: Path) -> Path:
    return state_dir.resolve() / "audit.log"


# Metadata level: who asked what (verb, URI, user agent, namespace, status, times),
# no request or response bodies. RequestReceived is dropped: one event per request
# (a watch logs ResponseStarted when it opens and ResponseComplete when it closes).
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
"""


def audit_args(state_dir: Path) -> list[str]:
    policy = state_dir / "audit-policy.yaml"
    policy.write_text(AUDIT_POLICY)
    return [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={audit_log_path(state_dir)}",
        "--audit-log-format=json",
        "--audit-log-maxsize=0",  # one file, never rotated: the cluster is throwaway
    ]


def write_kubeconfig(state_dir: Path, port: int) -> None:
    pki = state_dir / "pki"
    (state_dir / "kubeconfig").write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: runplan-local
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority: {pki / "ca.crt"}
users:
- name: runplan-admin
  user:
    client-certificate: {pki / "admin.crt"}
    client-key: {pki / "admin.key"}
contexts:
- name: runplan-local
  context: {{cluster: runplan-local, user: runplan-admin, namespace: default}}
current-context: runplan-local
"""
    )
    (state_dir / "kubeconfig").chmod(0o600)


def write_corefile(state_dir: Path, port: int) -> None:
    # No `forward` and no `cache`: nothing leaves the machine, and answers follow
    # the API at once (tests assert DNS right after a rollout settles).
    (state_dir / "Corefile").write_text(
        f"""cluster.local:{port} in-addr.arpa:{port} ip6.arpa:{port} {{
    bind 127.0.0.1
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {state_dir / "kubeconfig"} runplan-local
        pods insecure
        ttl 1
    }}
}}
"""
    )


CLIENT_LIMITS = ("--kube-api-qps=500", "--kube-api-burst=1000")


def _etcd_args(state_dir: Path, ports: dict[str, int]) -> list[str]:
    client, peer = (
        f"http://127.0.0.1:{ports['etcd_client']}",
        f"http://127.0.0.1:{ports['etcd_peer']}",
    )
    return [
        "--name=runplan",
        f"--data-dir={state_dir / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=runplan={peer}",
        "--log-level=warn",
        "--unsafe-no-fsync",  # throwaway data: durability only costs test time
    ]


def apiserver_args(state_dir: Path, ports: dict[str, int]) -> list[str]:
    pki = state_dir / "pki"
    return [
        f"--etcd-servers=http://127.0.0.1:{ports['etcd_client']}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports['apiserver']}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        "--profiling=false",
    ]


def _kcm_args(state_dir: Path, ports: dict[str, int]) -> list[str]:
    pki = state_dir / "pki"
    return [
        f"--kubeconfig={state_dir / 'kubeconfig'}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports['kcm']}",
        "--leader-elect=false",
        # nodelifecycle stays: it lifts the not-ready taint that admission puts on
        # every new node. nodeipam goes: kwok hands out pod IPs from its own CIDR.
        "--controllers=*,-nodeipam",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # The default client limit (20 requests/s, burst 30) is what throttles a
        # fan-out of 50 Deployments here (about 15 writes each), not the controllers:
        # loopback and one etcd take far more, as large real clusters are tuned to.
        *CLIENT_LIMITS,
    ]


def _scheduler_args(state_dir: Path, ports: dict[str, int]) -> list[str]:
    return [
        f"--kubeconfig={state_dir / 'kubeconfig'}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports['scheduler']}",
        "--leader-elect=false",
        *CLIENT_LIMITS,
    ]


def _kwok_args(state_dir: Path, ports: dict[str, int]) -> list[str]:
    return [
        f"--kubeconfig={state_dir / 'kubeconfig'}",
        f"--config={stages.path(state_dir)}",
        f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
        f"--cidr={POD_CIDR}",
        "--node-ip=10.0.0.1",
        f"--server-address=127.0.0.1:{ports['kwok']}",
    ]


def _coredns_args(state_dir: Path, ports: dict[str, int]) -> list[str]:
    return ["-conf", str(state_dir / "Corefile")]


ARGS: dict[str, Callable[[Path, dict[str, int]], list[str]]] = {
    "etcd": _etcd_args,
    "kube-apiserver": apiserver_args,
    "kube-controller-manager": _kcm_args,
    "kube-scheduler": _scheduler_args,
    "kwok": _kwok_args,
    "coredns": _coredns_args,
}
