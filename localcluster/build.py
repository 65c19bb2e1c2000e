"""Build the control plane binaries from Go modules into a cache outside the repo.

`go install k8s.io/kubernetes/cmd/...@v1.x` refuses to build because
k8s.io/kubernetes replaces its staging modules with local paths. A wrapper
module that requires k8s.io/kubernetes and replaces each staging module with
its published v0.x twin builds fine; etcd gets the same treatment. kwok and
CoreDNS carry no replace directives, so plain `go install pkg@tag` works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from localcluster import versions
from localcluster.errors import ClusterSetupError

K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
ALL_BINARIES = (*K8S_BINARIES, "etcd", "kwok", "coredns")


@dataclass(frozen=True)
class Component:
    """One `go` invocation that yields one or more binaries."""

    name: str
    binaries: tuple[str, ...]


COMPONENTS = (
    Component("kubernetes", K8S_BINARIES),
    Component("etcd", ("etcd",)),
    Component("kwok", ("kwok",)),
    Component("coredns", ("coredns",)),
)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "runplan" / "localcluster" / versions.fingerprint()


def bin_dir() -> Path:
    return cache_root() / "bin"


def missing_binaries() -> list[str]:
    return [b for b in ALL_BINARIES if not (bin_dir() / b).is_file()]


def build_all(log=print) -> None:
    """Build every component that has a binary missing; skip the rest."""
    if shutil.which("go") is None:
        raise ClusterSetupError(
            "go is not on PATH: the local control plane is built with Go >= 1.26"
        )
    for component in COMPONENTS:
        if all((bin_dir() / b).is_file() for b in component.binaries):
            continue
        started = time.monotonic()
        log(f"building {component.name} ({', '.join(component.binaries)}) ...")
        _BUILDERS[component.name](component)
        _check_versions(component)
        log(f"built {component.name} in {time.monotonic() - started:.0f}s")


def _k8s_ldflags() -> str:
    major, minor = versions.KUBERNETES.removeprefix("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    flags = {
        "gitVersion": versions.KUBERNETES,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    return "-s -w " + " ".join(f"-X {pkg}.{k}={v}" for k, v in flags.items())


def _build_kubernetes(component: Component) -> None:
    staging = "\n".join(
        f"\tk8s.io/{m} => k8s.io/{m} {versions.STAGING}" for m in versions.STAGING_MODULES
    )
    gomod = (
        "module runplan.local/k8sbuild\n\ngo 1.26.0\n\ngodebug default=go1.26\n\n"
        f"require k8s.io/kubernetes {versions.KUBERNETES}\n\nreplace (\n{staging}\n)\n"
    )
    pkgs = [f"k8s.io/kubernetes/cmd/{b}" for b in component.binaries]
    _build_in_wrapper(component, gomod, pkgs, versions.KUBERNETES, _k8s_ldflags())


def _build_etcd(component: Component) -> None:
    gomod = (
        "module runplan.local/etcdbuild\n\ngo 1.26.0\n\n"
        f"require go.etcd.io/etcd/server/v3 {versions.ETCD}\n"
    )
    _build_in_wrapper(
        component, gomod, ["go.etcd.io/etcd/server/v3"], versions.ETCD, "-s -w", out_name="etcd"
    )


def _build_in_wrapper(
    component: Component,
    gomod: str,
    pkgs: list[str],
    version: str,
    ldflags: str,
    out_name: str | None = None,
) -> None:
    work = cache_root() / "src" / component.name
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.mod").write_text(gomod)
    # `go get` resolves the module graph for exactly the packages we build; a
    # bare `go get pkg` would upgrade to the newest tag, hence the explicit @version.
    _go(component, ["get", *(f"{p}@{version}" for p in pkgs)], work)
    out = bin_dir() / out_name if out_name else bin_dir()
    bin_dir().mkdir(parents=True, exist_ok=True)
    target = str(out) if out_name else str(out) + os.sep
    _go(component, ["build", "-trimpath", "-ldflags", ldflags, "-o", target, *pkgs], work)


def _go_install(component: Component, pkg: str, version: str) -> None:
    bin_dir().mkdir(parents=True, exist_ok=True)
    work = cache_root() / "src" / component.name
    work.mkdir(parents=True, exist_ok=True)
    env_extra = {"GOBIN": str(bin_dir())}
    _go(
        component,
        ["install", "-trimpath", "-ldflags", "-s -w", f"{pkg}@{version}"],
        work,
        env_extra,
    )


def _build_kwok(component: Component) -> None:
    _go_install(component, "sigs.k8s.io/kwok/cmd/kwok", versions.KWOK)


def _build_coredns(component: Component) -> None:
    _go_install(component, "github.com/coredns/coredns", versions.COREDNS)


_EXPECTED_VERSION = {
    "kubernetes": versions.KUBERNETES,
    "etcd": versions.ETCD.removeprefix("v"),
    "kwok": versions.KWOK,
    "coredns": versions.COREDNS.removeprefix("v"),
}


def _check_versions(component: Component) -> None:
    """A binary that reports another version than pinned fails the build, loudly."""
    expected = _EXPECTED_VERSION[component.name]
    for binary in component.binaries:
        path = bin_dir() / binary
        flag = "-version" if binary == "coredns" else "--version"
        args = [str(path), "version", "--client"] if binary == "kubectl" else [str(path), flag]
        out = subprocess.run(args, capture_output=True, text=True, timeout=30).stdout
        if expected not in out:
            path.unlink()
            raise ClusterSetupError(
                f"{binary} reports {out.strip()!r}, expected version {expected}: removed it"
            )


_BUILDERS = {
    "kubernetes": _build_kubernetes,
    "etcd": _build_etcd,
    "kwok": _build_kwok,
    "coredns": _build_coredns,
}


def _go(
    component: Component,
    args: list[str],
    cwd: Path,
    env_extra: dict[str, str] | None = None,
) -> None:
    log_path = cache_root() / "logs" / f"build-{component.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    env.update(env_extra or {})
    command = ["go", *args]
    with log_path.open("a") as log:
        log.write(f"\n$ (cd {cwd} && {' '.join(command)})\n")
        log.flush()
        result = subprocess.run(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = log_path.read_text().splitlines()[-15:]
        raise ClusterSetupError(
            f"building {component.name} failed: `{' '.join(command)}` in {cwd} "
            f"exited {result.returncode}; full log: {log_path}\n" + "\n".join(tail)
        )
