"""`runplan PLAN` with no API server listening: exit 3, the server named, no
traceback, and the credential never printed."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLAN = REPO / "playbooks" / "statefulset-partition-canary.yaml"
TOKEN = "s3cr3t-token-value-never-printed"


def test_unreachable_cluster_exits_3(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}
users: [{{name: u, user: {{token: {TOKEN}}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
""")
    result = subprocess.run(
        [sys.executable, "-m", "runner", str(PLAN), "--kubeconfig", str(kubeconfig)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert f"127.0.0.1:{port}" in output
    assert "Traceback" not in output
    assert TOKEN not in output
