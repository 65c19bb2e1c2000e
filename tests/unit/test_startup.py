"""Start-up is part of the interface: the commands that need no cluster never load
the kubernetes client (about 0.3 s), and `--version` loads nothing but the CLI.

Each command runs in a fresh interpreter, which then lists what it imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CANARY = "playbooks/statefulset-partition-canary.yaml"
PLAYBOOKS = sorted(str(p.relative_to(REPO)) for p in (REPO / "playbooks").glob("*.yaml"))
PROBE = """\
import contextlib, io, json, sys
from runner.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    rc = main(sys.argv[1:])
lean = sys.modules.get("runner.kube.lean")
shells = sorted(lean.unexecuted()) if lean else []
print(json.dumps([rc, sorted(sys.modules), shells]))
"""
OFFLINE = {
    "validate": ["validate", *PLAYBOOKS],
    "graph": ["graph", CANARY],
    "graph dot": ["graph", CANARY, "--format", "dot"],
    "steps": ["steps"],
    "steps kind": ["steps", "verify_pods"],
    "schema": ["schema"],
    "dry-run offline": [CANARY, "--dry-run", "--offline"],
    "dry-run offline json": [CANARY, "--dry-run", "--offline", "--output", "json"],
    "dry-run offline markdown": [CANARY, "--dry-run", "--offline", "--output", "markdown"],
}


def imported(args: list[str]) -> tuple[int, set[str]]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=REPO, capture_output=True,
                          text=True, check=False)
    rc, modules, shells = json.loads(done.stdout.strip().splitlines()[-1])
    # runner.kube puts lazy package shells in place (runner/kube/lean.py): empty modules
    # whose __init__ has not run are not imports.
    modules = set(modules) - set(shells)
    return rc, {m.split(".")[0] for m in modules} | modules


@pytest.mark.parametrize("args", OFFLINE.values(), ids=OFFLINE.keys())
def test_offline_commands_do_not_import_the_kubernetes_client(args: list[str]) -> None:
    rc, modules = imported(args)
    assert rc == 0
    assert "kubernetes" not in modules
    assert "urllib3" not in modules
    assert "networkx" not in modules
    assert "runner.kube.client" not in modules


def test_validating_a_valid_plan_does_not_load_jsonschema() -> None:
    rc, modules = imported(["validate", *PLAYBOOKS])
    assert rc == 0
    assert "jsonschema" not in modules


def test_an_invalid_plan_is_still_explained_by_jsonschema(tmp_path: Path) -> None:
    plan = tmp_path / "bad.yaml"
    plan.write_text("apiVersion: runplan/v1\nkind: Plan\nmetadata: {name: bad}\n"
                    "steps:\n- id: a\n  wait: {duration: 5 minutes}\n")
    done = subprocess.run([sys.executable, "-m", "runner", "validate", str(plan)], cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert f"{plan}:6:" in done.stderr and "wait.duration" in done.stderr


def test_version_loads_only_the_cli() -> None:
    rc, modules = imported(["--version"])
    assert rc == 0
    heavy = {"yaml", "jinja2", "jsonschema", "networkx", "kubernetes", "runner.plan",
             "runner.steps", "runner.engine", "runner.kube"}
    assert not heavy & modules


RUN_PROBE = """\
import json, sys
import runner.engine, runner.engine.executor, runner.engine.session, runner.kube.client
import runner.steps
print(json.dumps(sorted(sys.modules)))
"""


def test_a_run_loads_the_libraries_of_its_steps_only() -> None:
    """What a run imports before its steps run: the client, not every kind's library
    (dnspython for verify_dns, jsonpath-ng for wait_for, jsonpatch for json patches)."""
    done = subprocess.run([sys.executable, "-c", RUN_PROBE], cwd=REPO, capture_output=True,
                          text=True, check=True)
    loaded = set(json.loads(done.stdout))
    modules = {m.split(".")[0] for m in loaded}
    assert "kubernetes" in modules  # the probe did load the engine
    assert not {"dns", "jsonpath_ng", "jsonpatch", "jsonschema", "networkx", "xml"} & modules
    assert not {m for m in loaded if m.startswith("runner.steps.")} - {
        "runner.steps.base", "runner.steps.context"}  # no kind's module before its step


CLIENT_PROBE = """\
import json, sys
from runner.kube.kubeconfig import load
from runner.kube.transport import Transport
Transport(load(sys.argv[1]).configuration).close()
print(json.dumps(sorted(sys.modules)))
"""


def test_a_token_kubeconfig_loads_the_rest_client_only(tmp_path: Path) -> None:
    """The kubernetes package's __init__, ApiClient (pydantic) and the full kubeconfig
    loader (oauthlib, requests) are not loaded for a token user: runner/kube/lean.py."""
    config = tmp_path / "config"
    config.write_text("current-context: c\ncontexts: [{name: c, context: {cluster: c, "
                      "user: u}}]\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]"
                      "\nusers: [{name: u, user: {token: t}}]\n")
    done = subprocess.run([sys.executable, "-c", CLIENT_PROBE, str(config)], cwd=REPO,
                          capture_output=True, text=True, check=True)
    modules = set(json.loads(done.stdout))
    assert "kubernetes.client.rest" in modules  # the probe did build the client
    unused = {"kubernetes.client.api_client", "kubernetes.config.kube_config", "kubernetes.watch",
              "kubernetes.stream", "kubernetes.dynamic", "pydantic", "oauthlib", "requests"}
    assert not unused & modules


KINDS_PROBE = """\
import json, sys
from runner.plan import compile_plan
compile_plan(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m.startswith("runner.steps."))))
"""


def test_a_plan_imports_the_modules_of_its_own_kinds_only() -> None:
    """runner.steps.REGISTRY imports a kind's module on its first lookup: the canary
    (apply, wait_ready, verify_pods, set_partition, set_image and a rollback) loads
    those, not the other 12 kinds (about 60 ms of start-up on 2 cores)."""
    done = subprocess.run([sys.executable, "-c", KINDS_PROBE, CANARY], cwd=REPO,
                          capture_output=True, text=True, check=True)
    kinds = {m.removeprefix("runner.steps.") for m in json.loads(done.stdout)}
    assert {"apply", "wait_ready", "verify_pods", "set_partition", "set_image"} <= kinds
    assert not {"verify_http", "verify_metrics", "approve_pods", "wait_for", "patch",
                "set_weights", "verify_dns"} & kinds


def test_the_registry_knows_every_kind_before_importing_it() -> None:
    from runner.steps import REGISTRY, TABLE, Registry

    registry = Registry(TABLE)
    assert list(registry) == list(REGISTRY) and len(registry) == len(TABLE)
    assert "verify_http" in registry and "nope" not in registry
    assert registry["verify_http"].kind == "verify_http"
    with pytest.raises(KeyError):
        registry["nope"]
