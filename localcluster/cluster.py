"""`up`, `down` and `status` of the local control plane.

Start order matters: etcd, then kube-apiserver (until /readyz), then the
controllers, scheduler, kwok and CoreDNS, which all need the API. What each is
started with (flags, kubeconfig, Corefile, audit policy): localcluster/components.py. `up` returns
only once 3 fake nodes are Ready, the `default` ServiceAccount exists and CoreDNS
answers for kubernetes.default -- the point from which a test can rely on it.
"""

from __future__ import annotations

import shutil
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localcluster import build, certs, components, gatewayapi, processes, stages
from localcluster import prometheus as prom
from localcluster.components import audit_log_path
from localcluster.errors import ClusterSetupError
from localcluster.processes import State

NODE_NAMES = ("kwok-node-0", "kwok-node-1", "kwok-node-2")
STAGES = stages.SOURCE  # what kwok runs is generated from it: localcluster/stages.py


@dataclass(frozen=True)
class Endpoints:
    """What a client needs: the kubeconfig, the DNS server (and Prometheus, if started)."""

    kubeconfig: Path
    dns: str
    prometheus: str | None = None

    def exports(self) -> str:
        lines = [f"export KUBECONFIG={self.kubeconfig}", f"export RUNPLAN_DNS_SERVER={self.dns}"]
        if self.prometheus:
            lines.append(f"export RUNPLAN_PROMETHEUS_URL={self.prometheus}")
        return "\n".join(lines)


def endpoints(state_dir: Path, state: State) -> Endpoints:
    prom_state = prom.load(state_dir)
    running = prom_state is not None and prom.running(prom_state)
    return Endpoints(state_dir / "kubeconfig", f"127.0.0.1:{state.ports['dns']}",
                     prom.url(prom_state) if running and prom_state else None)


def up(
    state_dir: Path, log: Callable[[str], None] = print, audit_log: bool = False,
    *, extras: tuple[str, ...] = (), pod_start_delay: str | None = None,
) -> Endpoints:
    """Start the control plane; `audit_log` has the API server write DIR/audit.log.

    `pod_start_delay` ("1s"): every pod is Running but not Ready for that long
    after it starts (kwok stages, see localcluster/stages.py).

    The audit log records every request at Metadata level (verb, URI, user agent,
    namespace, timestamps; no bodies), one JSON line per event. `extras`
    (`gateway-api`, `prometheus`) are installed or started too, also into a cluster
    already running.
    """
    state_dir = state_dir.resolve()
    unknown = sorted(set(extras) - set(EXTRAS))
    if unknown:
        raise ClusterSetupError(f"unknown extra(s) {', '.join(unknown)} "
                                f"(known: {', '.join(EXTRAS)})")
    if pod_start_delay:
        stages.delay_ms(pod_start_delay)  # a bad value fails before anything is touched
    existing = State.load(state_dir)
    if existing and healthy(state_dir, existing):
        log(f"local cluster already running (state in {state_dir})")
        if audit_log and not audit_log_path(state_dir).exists():
            log("note: it was started without --audit-log; `down` it first to get one")
        _install_extras(state_dir, existing, extras, log)
        if stages.differs(state_dir, pod_start_delay):
            log("note: it was started with another --pod-start-delay; `down` it first")
        return endpoints(state_dir, existing)
    if existing or state_dir.exists():
        _clean_stale(state_dir, existing, log)
    build.build_all(log)
    if "prometheus" in extras:
        prom.build(log)
    state_dir.mkdir(parents=True, exist_ok=True)
    stages.write(state_dir, pod_start_delay)
    state = State(bin_dir=str(build.bin_dir()), ports={})
    started = time.monotonic()
    try:
        _start_all(state_dir, state, audit_log)
        from localcluster import readiness  # the kubernetes client loads only here

        readiness.wait_cluster_ready(state_dir, state, NODE_NAMES, components.NODE_ANNOTATION)
        _install_extras(state_dir, state, extras, log)
    except BaseException:
        prom.stop(state_dir)
        processes.stop(state.pids, state.bin_dir)
        raise
    log(f"local cluster up in {time.monotonic() - started:.1f}s (state in {state_dir})")
    return endpoints(state_dir, state)


def _gateway_api(state_dir: Path, state: State, log: Callable[[str], None]) -> None:
    gatewayapi.install(Path(state.bin_dir) / "kubectl", state_dir / "kubeconfig", log)


def _prometheus(state_dir: Path, state: State, log: Callable[[str], None]) -> None:
    """Prometheus beside the cluster (built first if missing; localcluster/prometheus.py)."""
    url = prom.start(state_dir, state.ports["apiserver"], taken=state.ports.values())
    log(f"prometheus up at {url}")


EXTRAS: dict[str, Callable[[Path, State, Callable[[str], None]], None]] = {
    "gateway-api": _gateway_api,
    "prometheus": _prometheus,
}


def _install_extras(state_dir: Path, state: State, extras: tuple[str, ...],
                    log: Callable[[str], None]) -> None:
    for name in dict.fromkeys(extras):
        EXTRAS[name](state_dir, state, log)


def down(state_dir: Path, log: Callable[[str], None] = print) -> None:
    state_dir = state_dir.resolve()
    state = State.load(state_dir)
    if state is None:
        log(f"no local cluster state in {state_dir}: nothing to stop")
        return
    stopped = prom.stop(state_dir) + processes.stop(state.pids, state.bin_dir)
    state.pids = {}
    state.save(state_dir)
    log(f"stopped {', '.join(stopped) or 'nothing (no process was running)'}")


def stop_apiserver(state_dir: Path) -> None:
    """Stop only the kube-apiserver (etcd and the rest keep running): an API outage."""
    state_dir = state_dir.resolve()
    state = _running_state(state_dir)
    processes.stop({"kube-apiserver": state.pids["kube-apiserver"]}, state.bin_dir)


def start_apiserver(state_dir: Path) -> None:
    """Start the kube-apiserver again after `stop_apiserver`: same port, certificates and
    flags; returns once it is ready."""
    state_dir = state_dir.resolve()
    state = _running_state(state_dir)
    argv = [str(Path(state.bin_dir) / "kube-apiserver"),
            *components.apiserver_args(state_dir, state.ports)]
    if audit_log_path(state_dir).exists():
        argv += components.audit_args(state_dir)
    state.pids["kube-apiserver"] = processes.start(state_dir, "kube-apiserver", argv).pid
    state.save(state_dir)
    _wait(lambda: _api_ready(state_dir, state.ports["apiserver"]), "kube-apiserver",
          state_dir, state)


def _running_state(state_dir: Path) -> State:
    state = State.load(state_dir)
    if state is None or "kube-apiserver" not in state.pids:
        raise ClusterSetupError(f"no local cluster running in {state_dir}")
    return state


def status(state_dir: Path) -> dict[str, bool]:
    state = State.load(state_dir.resolve())
    if state is None:
        return {}
    alive = {name: processes.alive(pid, state.bin_dir) for name, pid in state.pids.items()}
    return {**alive, **prom.status(state_dir.resolve())}


def healthy(state_dir: Path, state: State) -> bool:
    if not state.pids or not all(processes.alive(p, state.bin_dir) for p in state.pids.values()):
        return False
    try:
        return _api_ready(state_dir, state.ports["apiserver"])
    except OSError:
        return False


def _clean_stale(state_dir: Path, state: State | None, log: Callable[[str], None]) -> None:
    """A crashed run left processes or files behind: stop what runs, wipe the rest."""
    if state is not None:
        leftovers = prom.stop(state_dir) + processes.stop(state.pids, state.bin_dir)
        if leftovers:
            log(f"stopped leftovers of an earlier run: {', '.join(leftovers)}")
    shutil.rmtree(state_dir, ignore_errors=True)


def _start_all(state_dir: Path, state: State, audit_log: bool = False) -> None:
    for name in ("etcd_client", "etcd_peer", "apiserver", "kcm", "scheduler", "dns", "kwok"):
        state.ports[name] = processes.free_port(taken=state.ports.values())
    certs.generate(state_dir / "pki")
    components.write_kubeconfig(state_dir, state.ports["apiserver"])
    components.write_corefile(state_dir, state.ports["dns"])
    bin_dir = Path(state.bin_dir)
    for name in components.COMPONENTS:
        argv = [str(bin_dir / name), *components.ARGS[name](state_dir, state.ports)]
        if name == "kube-apiserver" and audit_log:
            argv += components.audit_args(state_dir)
        state.pids[name] = processes.start(state_dir, name, argv).pid
        state.save(state_dir)
        if name == "etcd":
            _wait(lambda: _etcd_healthy(state.ports["etcd_client"]), "etcd", state_dir, state)
        if name == "kube-apiserver":
            _wait(
                lambda: _api_ready(state_dir, state.ports["apiserver"]),
                "kube-apiserver",
                state_dir,
                state,
            )


def _wait(
    ready: Callable[[], bool], name: str, state_dir: Path, state: State, timeout: float = 60.0
) -> None:
    """Back off between probes; a process that died is reported with its log."""
    deadline, delay = time.monotonic() + timeout, 0.05
    while time.monotonic() < deadline:
        check_alive(state_dir, state)
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise ClusterSetupError(
        f"{name} not ready after {timeout:.0f}s; log: {processes.log_path(state_dir, name)}"
    )


def check_alive(state_dir: Path, state: State) -> None:
    for name, pid in state.pids.items():
        if not processes.alive(pid, state.bin_dir):
            tail = (
                processes.log_path(state_dir, name).read_text(errors="replace").splitlines()[-10:]
            )
            raise ClusterSetupError(
                f"{name} exited during start-up; log: {processes.log_path(state_dir, name)}\n"
                + "\n".join(tail)
            )


def _etcd_healthy(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
        return b'"true"' in resp.read()


def _api_ready(state_dir: Path, port: int) -> bool:
    pki = state_dir / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    try:
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/readyz", timeout=2, context=ctx
        ) as r:
            return r.status == 200
    except urllib.error.HTTPError:
        return False


