"""Prometheus beside the local control plane: built from Go modules, started on loopback.

It lives apart from the core: its own cache folder (`prometheus-<version>/`, so
the core's fingerprint and its 17-minute build are untouched) and its own
state file (`<state-dir>/prometheus/state.json`, so `processes.alive` checks
its PID against its own binary folder). Config: scrape interval 1s, a
`file_sd` job reading `<state-dir>/prometheus/targets.json` (a test adds its
loopback exporter by writing that file), and the kube-apiserver's own
/metrics over TLS with the admin client certificate every 5s, so a real metric
exists with no exporter at all.

The build uses the `remove_all_sd` tag: of the ~25 service-discovery plugins
only file and http stay (plugins/minimum.go), which drops the cloud SDKs and
roughly halves what is compiled. The web UI assets are not embedded (no
`builtinassets` tag): the HTTP API is all runplan uses.

`query_requests` reads Prometheus' own request counter, so a test or a benchmark
can count the queries runplan sent without a proxy in between.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection
from pathlib import Path

import urllib3

from localcluster import processes, versions
from localcluster.errors import ClusterSetupError
from localcluster.processes import State

NAME = "prometheus"
PACKAGE = "github.com/prometheus/prometheus/cmd/prometheus"
BUILD_TAGS = "remove_all_sd"
SCRAPE_INTERVAL = "1s"
APISERVER_INTERVAL = "5s"
READY_TIMEOUT = 60.0
# The handlers runplan's verify_metrics posts to (runner/evidence/prom.py).
QUERY_HANDLERS = frozenset({"/api/v1/query", "/api/v1/query_range"})
_REQUESTS = re.compile(r'^prometheus_http_requests_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "runplan" / "localcluster" / f"prometheus-{versions.PROMETHEUS}"


def binary() -> Path:
    return cache_root() / "bin" / NAME


def build(log: Callable[[str], None] = print) -> Path:
    """Build the pinned Prometheus unless it is there; check the version it reports."""
    if binary().is_file():
        return binary()
    if shutil.which("go") is None:
        raise ClusterSetupError("go is not on PATH: Prometheus is built with Go >= 1.26.7")
    started = time.monotonic()
    log(f"building prometheus {versions.PROMETHEUS} (tags {BUILD_TAGS}) ...")
    _go_install()
    _check_version()
    log(f"built prometheus in {time.monotonic() - started:.0f}s")
    return binary()


def _ldflags() -> str:
    pkg = "github.com/prometheus/common/version"
    flags = {"Version": versions.prometheus_release(), "Revision": versions.PROMETHEUS,
             "Branch": "HEAD", "BuildUser": "runplan", "BuildDate": "19700101-00:00:00"}
    return "-s -w " + " ".join(f"-X {pkg}.{k}={v}" for k, v in flags.items())


def _go_install() -> None:
    work = cache_root() / "src"
    work.mkdir(parents=True, exist_ok=True)
    log_path = cache_root() / "logs" / "build-prometheus.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local",
           "GOBIN": str(binary().parent)}
    command = ["go", "install", "-tags", BUILD_TAGS, "-trimpath", "-ldflags", _ldflags(),
               f"{PACKAGE}@{versions.PROMETHEUS}"]
    with log_path.open("a") as log:
        log.write(f"\n$ (cd {work} && {' '.join(command)})\n")
        log.flush()
        result = subprocess.run(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-15:])
        raise ClusterSetupError(f"building prometheus failed: `{' '.join(command)}` exited "
                                f"{result.returncode}; full log: {log_path}\n{tail}")


def _check_version() -> None:
    out = subprocess.run([str(binary()), "--version"], capture_output=True, text=True,
                         timeout=30).stdout
    expected = f"version {versions.prometheus_release()}"
    if expected not in out:
        binary().unlink()
        raise ClusterSetupError(f"prometheus reports {out.strip()!r}, expected {expected}: "
                                "removed it")


def home(state_dir: Path) -> Path:
    return state_dir / NAME


def targets_file(state_dir: Path) -> Path:
    return home(state_dir) / "targets.json"


def url(state: State) -> str:
    return f"http://127.0.0.1:{state.ports[NAME]}"


def load(state_dir: Path) -> State | None:
    return State.load(home(state_dir))


def start(state_dir: Path, apiserver_port: int, taken: Collection[int] = ()) -> str:
    """Start Prometheus for the cluster in `state_dir`; its URL once /-/ready answers."""
    existing = load(state_dir)
    if existing is not None and running(existing) and _ready(url(existing)):
        return url(existing)
    stop(state_dir)
    build()
    home(state_dir).mkdir(parents=True, exist_ok=True)
    if not targets_file(state_dir).exists():
        targets_file(state_dir).write_text("[]\n")
    config = home(state_dir) / "prometheus.yml"
    config.write_text(json.dumps(config_for(state_dir, apiserver_port), indent=2))
    state = State(bin_dir=str(binary().parent), ports={NAME: processes.free_port(taken)})
    argv = [str(binary()), f"--config.file={config}",
            f"--storage.tsdb.path={home(state_dir) / 'data'}",
            f"--web.listen-address=127.0.0.1:{state.ports[NAME]}",
            "--storage.tsdb.retention.time=1d", "--log.level=warn"]
    state.pids[NAME] = processes.start(state_dir, NAME, argv).pid
    state.save(home(state_dir))
    _wait_ready(state_dir, state)
    return url(state)


def config_for(state_dir: Path, apiserver_port: int) -> dict[str, object]:
    """The config (YAML is a superset of JSON, so it is written as JSON)."""
    pki = state_dir / "pki"
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL,
                   "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            # file_sd watches the file (inotify) and re-reads it every second too.
            {"job_name": "targets",
             "file_sd_configs": [{"files": [str(targets_file(state_dir))],
                                  "refresh_interval": SCRAPE_INTERVAL}]},
            # The API server's /metrics is large (thousands of series): every 5s, so a
            # busy machine neither times the scrape out (up == 0) nor spends a core on it.
            {"job_name": "kube-apiserver", "scheme": "https",
             "scrape_interval": APISERVER_INTERVAL, "scrape_timeout": APISERVER_INTERVAL,
             "tls_config": {"ca_file": str(pki / "ca.crt"), "cert_file": str(pki / "admin.crt"),
                            "key_file": str(pki / "admin.key")},
             "static_configs": [{"targets": [f"127.0.0.1:{apiserver_port}"]}]},
        ],
    }


def _wait_ready(state_dir: Path, state: State) -> None:
    """Until /-/ready answers and the API server was scraped once (so its metrics exist
    when `up` returns). Back off between probes; a Prometheus that died is reported."""
    deadline, delay = time.monotonic() + READY_TIMEOUT, 0.05
    log = processes.log_path(state_dir, NAME)
    while time.monotonic() < deadline:
        if not running(state):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
            raise ClusterSetupError(f"prometheus exited during start-up; log: {log}\n{tail}")
        if _ready(url(state)) and _scraped_apiserver(url(state)):
            return
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    stop(state_dir)
    raise ClusterSetupError(f"prometheus not ready (or the API server not scraped) after "
                            f"{READY_TIMEOUT:.0f}s; log: {log}")


def _scraped_apiserver(base: str) -> bool:
    query = urllib.parse.urlencode({"query": 'up{job="kube-apiserver"} == 1'})
    try:
        with urllib.request.urlopen(f"{base}/api/v1/query?{query}", timeout=2) as resp:
            return bool(json.loads(resp.read())["data"]["result"])
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return False


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def running(state: State) -> bool:
    return all(processes.alive(pid, state.bin_dir) for pid in state.pids.values()) and bool(
        state.pids)


def stop(state_dir: Path) -> list[str]:
    state = load(state_dir)
    if state is None:
        return []
    stopped = processes.stop(state.pids, state.bin_dir)
    state.pids = {}
    state.save(home(state_dir))
    return stopped


def status(state_dir: Path) -> dict[str, bool]:
    state = load(state_dir)
    if state is None or not state.pids:
        return {}
    return {name: processes.alive(pid, state.bin_dir) for name, pid in state.pids.items()}


def query_requests(base: str, handlers: Collection[str] = QUERY_HANDLERS) -> int:
    """Requests this Prometheus has answered so far (any status) on `handlers`, from its
    own `prometheus_http_requests_total` on /metrics. Reading /metrics is not a query,
    so the count is not disturbed by reading it; a handler never hit has no series (0)."""
    resp = urllib3.PoolManager(retries=False).request("GET", f"{base.rstrip('/')}/metrics",
                                                      timeout=5.0)
    if resp.status != 200:
        raise ClusterSetupError(f"{base}/metrics answered {resp.status}")
    return count_query_requests(resp.data.decode(), handlers)


def count_query_requests(exposition: str, handlers: Collection[str] = QUERY_HANDLERS) -> int:
    """The sum of the counters of `handlers` in a text exposition."""
    total = 0.0
    for line in exposition.splitlines():
        match = _REQUESTS.match(line)
        if match and dict(_LABEL.findall(match["labels"])).get("handler") in handlers:
            total += float(match["value"])
    return int(total)
