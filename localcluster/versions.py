"""The one place that pins what the local control plane is built from.

Kubernetes 1.36 requires etcd from the 3.6 line (its go.mod pins
go.etcd.io/etcd/*/v3 v3.6.8), so etcd follows it rather than 3.5.
kwok and CoreDNS are the newest tags whose `go` line fits Go 1.26.
"""

from __future__ import annotations

KUBERNETES = "v1.36.3"
# Staging modules (k8s.io/api, client-go, ...) are published as v0.<minor>.<patch>.
STAGING = "v0." + KUBERNETES.removeprefix("v1.")
ETCD = "v3.6.8"
KWOK = "v0.8.0"
COREDNS = "v1.14.7"
# Extras, each cached in its own folder (not part of fingerprint()): `up --with gateway-api`.
GATEWAY_API = "v1.6.3"  # sigs.k8s.io/gateway-api: standard-channel CRDs; go line fits Go 1.26

# Modules that k8s.io/kubernetes replaces with ./staging/src/k8s.io/<name>.
STAGING_MODULES = (
    "api",
    "apiextensions-apiserver",
    "apimachinery",
    "apiserver",
    "cli-runtime",
    "client-go",
    "cloud-provider",
    "cluster-bootstrap",
    "code-generator",
    "component-base",
    "component-helpers",
    "controller-manager",
    "cri-api",
    "cri-client",
    "cri-streaming",
    "csi-translation-lib",
    "dynamic-resource-allocation",
    "endpointslice",
    "externaljwt",
    "kms",
    "kube-aggregator",
    "kube-controller-manager",
    "kube-proxy",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "metrics",
    "mount-utils",
    "pod-security-admission",
    "sample-apiserver",
    "streaming",
)


def fingerprint() -> str:
    """Names the cache folder: a new pin means a new folder, never a mixed one."""
    return f"k8s-{KUBERNETES}_etcd-{ETCD}_kwok-{KWOK}_coredns-{COREDNS}"

# Prometheus 3.x publishes its Go module as v0.3MM.P for release 3.MM.P; its go.mod
# needs go >= 1.26.7 and has no replace directives. Cached in its own folder
# (prometheus_release()), so pinning it never invalidates the core build above.
PROMETHEUS = "v0.316.0"


def prometheus_release() -> str:
    """`v0.316.0` -> `3.16.0`: the version the binary reports."""
    minor, patch = PROMETHEUS.removeprefix("v0.").split(".")
    return f"{int(minor) // 100}.{int(minor) % 100}.{patch}"
