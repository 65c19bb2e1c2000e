"""Gateway API CRDs (standard channel) for `up --with gateway-api`; no data plane.

The CRDs are files of the pinned Go module sigs.k8s.io/gateway-api: `go mod
download -json` fetches it through the module proxy and names its folder; the
YAML of config/crd/standard/ is copied into its own cache folder (outside the
core fingerprint, so pinning another version never rebuilds the control
plane). Installing them means the API server runs their schemas and CEL rules
for real: a bad HTTPRoute is refused as a real cluster would refuse it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from localcluster import versions
from localcluster.errors import ClusterSetupError

MODULE = "sigs.k8s.io/gateway-api"
STANDARD = Path("config/crd/standard")
ESTABLISH_TIMEOUT = "60s"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "runplan" / "localcluster" / f"gateway-api-{versions.GATEWAY_API}"


def crd_dir() -> Path:
    return cache_dir() / "crds"


def fetch(log: Callable[[str], None] = print) -> Path:
    """The CRD folder, fetched once from the Go module; fails loudly."""
    target = crd_dir()
    if target.is_dir() and any(target.glob("*.yaml")):
        return target
    if shutil.which("go") is None:
        raise ClusterSetupError("go is not on PATH: the Gateway API CRDs come from a Go module")
    log(f"fetching {MODULE}@{versions.GATEWAY_API} (Gateway API CRDs) ...")
    source = _module_dir() / STANDARD
    files = sorted(source.glob("*.yaml"))
    if not files:
        raise ClusterSetupError(f"{MODULE}@{versions.GATEWAY_API} has no CRDs in {STANDARD}")
    partial = target.with_name(f"crds.partial-{os.getpid()}")  # parallel sessions each own one
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for file in files:
        shutil.copyfile(file, partial / file.name)
    try:
        partial.rename(target)  # whole or not at all: a killed fetch leaves no half folder
    except OSError:  # another session renamed its copy first: the same files
        shutil.rmtree(partial, ignore_errors=True)
    log(f"fetched {len(files)} Gateway API manifests into {target}")
    return target


def _module_dir() -> Path:
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    command = ["go", "mod", "download", "-json", f"{MODULE}@{versions.GATEWAY_API}"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False,
                            cwd=cache_dir().parent if cache_dir().parent.is_dir() else None)
    try:
        info = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        info = {}
    if result.returncode != 0 or not info.get("Dir"):
        why = info.get("Error") or result.stderr.strip() or f"exit {result.returncode}"
        raise ClusterSetupError(f"`{' '.join(command)}` failed: {why}")
    return Path(info["Dir"])


def install(kubectl: Path, kubeconfig: Path, log: Callable[[str], None] = print) -> None:
    """Apply the CRDs (server-side, idempotent) and wait until they are Established."""
    folder = fetch(log)
    _kubectl(kubectl, kubeconfig, ["apply", "--server-side", "--force-conflicts", "-f",
                                   str(folder)])
    names = [f"crd/{path.name.removesuffix('.yaml').partition('_')[2]}.gateway.networking.k8s.io"
             for path in sorted(folder.glob("gateway.networking.k8s.io_*.yaml"))
             if "_vap_" not in path.name]
    _kubectl(kubectl, kubeconfig, ["wait", "--for=condition=Established",
                                   f"--timeout={ESTABLISH_TIMEOUT}", *names])
    log(f"Gateway API {versions.GATEWAY_API} CRDs installed ({len(names)} kinds)")


def _kubectl(kubectl: Path, kubeconfig: Path, args: list[str]) -> None:
    command = [str(kubectl), "--kubeconfig", str(kubeconfig), *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=180)
    if result.returncode != 0:
        raise ClusterSetupError(f"`kubectl {' '.join(args[:2])}` for the Gateway API CRDs "
                                f"failed (exit {result.returncode}): {result.stderr.strip()}")
