"""Start, check and stop the control plane's processes; the state lives in one JSON file."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path

from localcluster.errors import ClusterSetupError


@dataclass
class State:
    """What `up` started, so `down` and `status` can find it again."""

    bin_dir: str
    ports: dict[str, int]
    pids: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def path(state_dir: Path) -> Path:
        return state_dir / "state.json"

    @classmethod
    def load(cls, state_dir: Path) -> State | None:
        try:
            return cls(**json.loads(cls.path(state_dir).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, state_dir: Path) -> None:
        self.path(state_dir).write_text(json.dumps(asdict(self), indent=2))


def free_port(taken: Collection[int] = ()) -> int:
    """A loopback port free for both TCP and UDP (CoreDNS listens on both).

    `taken`: ports handed out already but not bound yet; the kernel may offer
    one of them again (it did: etcd and the API server once got the same port).
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            if port in taken:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return int(port)
    raise ClusterSetupError("no free loopback port found")


def log_path(state_dir: Path, name: str) -> Path:
    return state_dir / "logs" / f"{name}.log"


def start(state_dir: Path, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
    """Start a detached process (its own session) logging to logs/<name>.log."""
    path = log_path(state_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as log:
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=state_dir,
        )


def alive(pid: int, bin_dir: str) -> bool:
    """True if `pid` runs one of our binaries: a recycled PID is never touched.

    /proc/PID/exe, not cmdline: cmdline reads empty for a moment right after
    execve, and a zombie has no exe at all (so it counts as stopped).
    """
    try:
        return os.readlink(f"/proc/{pid}/exe").startswith(bin_dir)
    except OSError:
        return False


def stop(pids: dict[str, int], bin_dir: str, grace: float = 10.0) -> list[str]:
    """SIGTERM in reverse start order, SIGKILL what outlives the grace period."""
    stopped = []
    for name, pid in reversed(list(pids.items())):
        if not alive(pid, bin_dir):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while alive(pid, bin_dir) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if alive(pid, bin_dir):
            os.kill(pid, signal.SIGKILL)
            _reap(pid)
        stopped.append(name)
    return stopped


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
