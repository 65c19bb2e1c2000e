"""Every playbook in playbooks/, run through the `runplan` command as a user would.

The cluster is checked independently of runplan's own verdicts (its wait_ready
and verify steps): objects are read with the `kubernetes` client, names are
resolved with dnspython, and a `Recorder` watches pods and ReplicaSets during a
run for what must hold *while* it runs. Checkpoints in the middle of a plan come
from running it in consecutive pieces (`segment`: a copy of the plan holding
some of its steps, written to tmp_path); tests/integration/playbook_expectations.md
is the specification. Over 400 lines: one test (or a few) per playbook, sharing
the Cluster view and the Recorder.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from runner.plan import compile_plan
from tests.integration import kubewait
from tests.integration.lookup import resolve

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
ALL_PLAYBOOKS = sorted(p.stem for p in PLAYBOOKS.glob("*.yaml"))
_SCRIPT = Path(sys.executable).parent / "runplan"
RUNPLAN = ([str(_SCRIPT)] if _SCRIPT.exists()
           else [sys.executable, "-c", "import sys; from runner.cli import main; sys.exit(main())"])
Obj = dict[str, Any]

# --- running runplan --------------------------------------------------------------


def runplan(*args: str, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RUNPLAN, *args], cwd=REPO, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, check=False)


def output(proc: subprocess.CompletedProcess[str]) -> str:
    return f"{proc.stdout}\n{proc.stderr}"


def run_ok(plan: Path | str, namespace: str, *extra: str) -> str:
    proc = runplan(str(plan), "-e", f"ns={namespace}", *extra)
    print(output(proc))  # shown when a later check fails (or with -s)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{output(proc)}"
    assert "Traceback" not in output(proc)
    return output(proc)


def run_failing(plan: Path | str, namespace: str, *extra: str,
                env: dict[str, str] | None = None) -> str:
    proc = runplan(str(plan), "-e", f"ns={namespace}", *extra, env=env)
    text = output(proc)
    print(text)
    assert proc.returncode == 1, f"exit {proc.returncode}, want 1\n{text}"
    assert "Traceback" not in text, text
    return text


def playbook(name: str) -> Path:
    return PLAYBOOKS / f"{name}.yaml"


def plan_doc(name: str) -> Obj:
    doc: Obj = yaml.safe_load(playbook(name).read_text(encoding="utf-8"))
    for step in doc["steps"] + list(doc.get("on_failure") or []):
        _absolute_manifests(step)
    return doc


def _absolute_manifests(step: Obj) -> None:
    """A copy of a plan lives in tmp_path: its manifest paths must not be relative."""
    if isinstance(step, dict) and "apply" in step:
        step["apply"]["manifests"] = [str(PLAYBOOKS / m) for m in step["apply"]["manifests"]]


def write_plan(doc: Obj, path: Path) -> Path:
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def segment(name: str, tmp_path: Path, first: str, last: str | None = None) -> Path:
    """A copy of playbook `name` with its top-level steps `first`..`last` (inclusive);
    `needs` naming steps left out are dropped (those steps ran in an earlier piece)."""
    doc = plan_doc(name)
    ids = [s["id"] for s in doc["steps"]]
    kept = doc["steps"][ids.index(first): ids.index(last) + 1 if last else len(ids)]
    kept_ids = {s["id"] for s in kept}
    for step in kept:
        if "needs" in step:
            step["needs"] = [n for n in step["needs"] if n in kept_ids]
    doc["steps"] = kept
    return write_plan(doc, tmp_path / f"{name}.{first}.yaml")


# --- reading the cluster -------------------------------------------------------------


class Cluster:
    """The test's own view of one namespace (kubernetes client objects)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api, self.ns = api, namespace
        # Any: the client's models make every field Optional; a test reads what it expects.
        self.core: Any = client.CoreV1Api(api)
        self.apps: Any = client.AppsV1Api(api)

    def pods(self, selector: str = "") -> dict[str, Any]:
        items = self.core.list_namespaced_pod(self.ns, label_selector=selector).items
        return {p.metadata.name: p for p in items if p.metadata.deletion_timestamp is None}

    def replicasets(self, owner: str) -> list[Any]:
        items = self.apps.list_namespaced_replica_set(self.ns).items
        return [rs for rs in items if _owned_by(rs, owner)]

    def sts(self, name: str) -> Any:
        return self.apps.read_namespaced_stateful_set(name, self.ns)

    def sts_counted(self, name: str, ready: int, updated: int | None = None) -> Any:
        """The StatefulSet once its controller's status for the current generation
        counts `ready` (and `updated`) replicas: runplan's wait_ready judges the pods
        themselves, and the controller's counters (what `kubectl get` shows) follow
        them a moment later."""
        def counted(objects: dict[str, Any]) -> bool:
            sts = objects.get(name)
            status = sts.status if sts else None
            return bool(status) and status.observed_generation == sts.metadata.generation \
                and (status.ready_replicas or 0) == ready \
                and (updated is None or (status.updated_replicas or 0) == updated)

        return kubewait.until(self.apps.list_namespaced_stateful_set, counted, timeout=30,
                              what=f"statefulset/{name} status: {ready} ready",
                              namespace=self.ns)[name]

    def deploy(self, name: str) -> Any:
        return self.apps.read_namespaced_deployment(name, self.ns)

    def revisions(self, owner: str) -> list[Any]:
        items = self.apps.list_namespaced_controller_revision(self.ns).items
        return [r for r in items if _owned_by(r, owner)]

    def uids(self, selector: str = "") -> dict[str, str]:
        return {n: p.metadata.uid for n, p in self.pods(selector).items()}

    def wait_pods(self, predicate: Callable[[list[Any]], bool], what: str,
                  selector: str = "", timeout: int = 60) -> list[Any]:
        found = kubewait.until(self.core.list_namespaced_pod,
                               lambda objs: predicate(kubewait.pods_of(objs, "")),
                               namespace=self.ns, label_selector=selector, what=what,
                               timeout=timeout)
        return kubewait.pods_of(found, "")


def _owned_by(obj: Any, owner: str) -> bool:
    return any(ref.name == owner for ref in obj.metadata.owner_references or [])


def image(pod: Any) -> str:
    return str(pod.spec.containers[0].image)


def revision_hash(pod: Any) -> str | None:
    labels = pod.metadata.labels or {}
    return labels.get("controller-revision-hash") or labels.get("pod-template-hash")


def condition(obj: Any, kind: str) -> Any:
    return next((c for c in (obj.status.conditions or []) if c.type == kind), None)


def annotation(obj: Any, key: str) -> str | None:
    return (obj.metadata.annotations or {}).get(key)


REVISION = "deployment.kubernetes.io/revision"
HISTORY = "deployment.kubernetes.io/revision-history"
CAUSE = "kubernetes.io/change-cause"



# --- watching during a run --------------------------------------------------------------


class Recorder:
    """Every pod and ReplicaSet event of a namespace while a run goes on.

    Lists first (synchronously, so nothing the run does is missed), then follows
    a watch per kind from that resourceVersion in a thread. Events are kept as
    JSON dicts in arrival order.
    """

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api, self.ns = api, namespace
        self.events: list[tuple[str, str, Obj]] = []  # (kind, type, object)
        self._lock, self._stop = threading.Lock(), threading.Event()
        core: Any = client.CoreV1Api(api)
        apps: Any = client.AppsV1Api(api)
        self._kinds = {"pod": core.list_namespaced_pod, "rs": apps.list_namespaced_replica_set}
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Recorder:
        for kind, list_fn in self._kinds.items():
            listed = list_fn(self.ns)
            for item in listed.items:
                self._add(kind, "ADDED", item)
            thread = threading.Thread(target=self._follow, daemon=True,
                                      args=(kind, list_fn, listed.metadata.resource_version))
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _add(self, kind: str, event: str, obj: Any) -> None:
        with self._lock:
            self.events.append((kind, event, self.api.sanitize_for_serialization(obj)))

    def _follow(self, kind: str, list_fn: Callable[..., Any], version: str) -> None:
        stream = watch.Watch()
        while not self._stop.is_set():
            try:
                for event in stream.stream(list_fn, self.ns, resource_version=version,
                                           timeout_seconds=2):
                    self._add(kind, event["type"], event["object"])
                version = stream.resource_version or version
            except ApiException as exc:  # 410: the test runs are far too short for it
                raise AssertionError(f"recorder watch of {kind} failed: {exc}") from exc

    def replay(self, kind: str) -> Iterator[dict[str, Obj]]:
        """The live objects of `kind` by name after each event, in order."""
        state: dict[str, Obj] = {}
        with self._lock:
            events = list(self.events)
        for k, event, obj in events:
            if k != kind:
                continue
            if event == "DELETED":
                state.pop(obj["metadata"]["name"], None)
            else:
                state[obj["metadata"]["name"]] = obj
            yield state

    def pod_revisions(self) -> dict[str, list[str]]:
        """Each pod name's controller-revision-hash, one entry per pod UID, in order."""
        seen: dict[str, dict[str, str]] = {}
        for kind, _, obj in self.events:
            if kind == "pod":
                labels = obj["metadata"].get("labels") or {}
                seen.setdefault(obj["metadata"]["name"], {}).setdefault(
                    obj["metadata"]["uid"], labels.get("controller-revision-hash", ""))
        return {name: list(by_uid.values()) for name, by_uid in seen.items()}

    def pod_uids(self) -> dict[str, list[str]]:
        """Each pod name's UIDs, in the order they appeared."""
        found: dict[str, list[str]] = {}
        for kind, _, obj in self.events:
            if kind != "pod":
                continue
            uids = found.setdefault(obj["metadata"]["name"], [])
            if obj["metadata"]["uid"] not in uids:
                uids.append(obj["metadata"]["uid"])
        return found


def json_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def live(pod: Obj) -> bool:
    return not pod["metadata"].get("deletionTimestamp")


# --- every playbook ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_PLAYBOOKS)
def test_playbook_validates_and_reviews_offline(name: str) -> None:
    proc = runplan("validate", str(playbook(name)))
    assert proc.returncode == 0, output(proc)
    proc = runplan(str(playbook(name)), "--dry-run", "--offline")
    assert proc.returncode == 0, output(proc)
    ids = [s.id for s in compile_plan(str(playbook(name)), {}).all_steps()]
    listed = [m.group(1) for m in re.finditer(r"^\s*\d+\. (\S+) \(", proc.stdout, re.M)]
    assert listed == ids  # every step, loops expanded, in plan order


# --- statefulset-partition-canary ------------------------------------------------------------

STS_OLD, STS_NEW = "nginx:1.25.4", "nginx:1.26.1"


def test_statefulset_partition_canary_end_to_end(api: client.ApiClient, namespace: str) -> None:
    with Recorder(api, namespace) as rec:
        run_ok(playbook("statefulset-partition-canary"), namespace)
    cluster = Cluster(api, namespace)
    sts = cluster.sts("web")
    r2 = sts.status.update_revision
    assert sts.status.current_revision == r2
    assert sts.status.updated_replicas == sts.status.current_replicas == 5
    assert sts.spec.update_strategy.rolling_update.partition == 0
    pods = cluster.pods()
    assert sorted(pods) == [f"web-{i}" for i in range(5)]
    assert all(image(p) == STS_NEW and revision_hash(p) == r2 and kubewait.pod_ready(p)
               for p in pods.values())
    # Each ordinal moves from the old revision to the new one exactly once, never
    # back. kwok deletes pods by name with no UID precondition, so under load a
    # late delete of the old web-N can hit its new-revision successor, which the
    # controller re-creates on the same revision: that is our fake kubelet, not
    # the rollout, so only revision changes are counted.
    history = rec.pod_revisions()
    moves = {name: [rev for i, rev in enumerate(revs) if i == 0 or rev != revs[i - 1]]
             for name, revs in history.items()}
    assert all(moves[f"web-{i}"][-1] == r2 and len(moves[f"web-{i}"]) == 2 for i in range(5)), \
        history
    _check_replacement_order(rec, r2)


def _check_replacement_order(rec: Recorder, new_revision: str) -> None:
    """Replaced from the highest ordinal down, and web-0/web-1 stayed Ready (untouched)
    until the canary pods 2,3,4 were all new and Ready."""
    uids = rec.pod_uids()
    born = []  # names in the order their replacement first appeared
    for kind, _, obj in rec.events:
        meta = obj["metadata"]
        if kind == "pod" and meta["uid"] == uids[meta["name"]][-1] and meta["name"] not in born:
            born.append(meta["name"])
    assert born == ["web-4", "web-3", "web-2", "web-1", "web-0"]
    was_ready: set[str] = set()
    for state in rec.replay("pod"):
        new = [state.get(f"web-{i}") for i in (2, 3, 4)]
        if all(p and (p["metadata"].get("labels") or {}).get("controller-revision-hash")
               == new_revision and live(p) and json_ready(p) for p in new):
            break
        for low in ("web-0", "web-1"):
            pod = state.get(low)
            if low in was_ready:
                assert pod and pod["metadata"]["uid"] == uids[low][0] and live(pod) \
                    and json_ready(pod), f"{low} left Ready before the canary pods were Ready"
            elif pod and json_ready(pod):
                was_ready.add(low)
    else:
        raise AssertionError("pods 2,3,4 never were all new and Ready")
    assert was_ready == {"web-0", "web-1"}


def test_statefulset_partition_canary_checkpoints(api: client.ApiClient, namespace: str,
                                                  tmp_path: Path) -> None:
    cluster, name = Cluster(api, namespace), "statefulset-partition-canary"
    run_ok(segment(name, tmp_path, "install", "hold"), namespace)
    assert cluster.core.read_namespaced_service("web", namespace).spec.cluster_ip == "None"
    sts = cluster.sts_counted("web", 5)
    r1 = sts.status.update_revision
    assert sts.status.current_revision == r1 and sts.status.ready_replicas == 5
    assert sts.status.observed_generation == sts.metadata.generation
    assert sts.spec.update_strategy.rolling_update.partition == 2
    assert len(cluster.revisions("web")) == 1
    before = cluster.pods()
    assert sorted(before) == [f"web-{i}" for i in range(5)]
    assert all(image(p) == STS_OLD and revision_hash(p) == r1 and kubewait.pod_ready(p)
               for p in before.values())

    run_ok(segment(name, tmp_path, "canary", "verify-canary"), namespace)
    sts = cluster.sts_counted("web", 5, updated=3)
    r2 = sts.status.update_revision
    assert r2 != r1 and sts.status.current_revision == r1
    assert sts.spec.template.spec.containers[0].image == STS_NEW
    assert sts.status.updated_replicas == 3 and sts.status.ready_replicas == 5
    assert len(cluster.revisions("web")) == 2
    canary = cluster.pods()
    for i in range(5):
        pod = canary[f"web-{i}"]
        assert kubewait.pod_ready(pod)
        old = i < 2
        assert (image(pod), revision_hash(pod)) == ((STS_OLD, r1) if old else (STS_NEW, r2))
        assert (pod.metadata.uid == before[f"web-{i}"].metadata.uid) == old

    run_ok(segment(name, tmp_path, "widen"), namespace)
    sts = cluster.sts_counted("web", 5, updated=5)
    assert sts.status.current_revision == sts.status.update_revision == r2
    assert sts.spec.update_strategy.rolling_update.partition == 0
    done = cluster.pods()
    assert all(image(p) == STS_NEW and revision_hash(p) == r2 and kubewait.pod_ready(p)
               for p in done.values()) and len(done) == 5
    assert all(done[f"web-{i}"].metadata.uid == canary[f"web-{i}"].metadata.uid
               for i in (2, 3, 4))  # not recreated twice
    assert all(done[f"web-{i}"].metadata.uid != before[f"web-{i}"].metadata.uid for i in (0, 1))


def test_failing_verify_exits_1_before_any_change(api: client.ApiClient, namespace: str) -> None:
    # The plan's old_image disagrees with its manifest: `baseline` must fail.
    text = run_failing(playbook("statefulset-partition-canary"), namespace,
                       "-e", "old_image=nginx:0.0.1")
    assert "baseline" in text
    assert f"pod web-0: image {STS_OLD} (want nginx:0.0.1)" in text
    for step in ("hold", "canary"):
        assert not re.search(rf"\[{re.escape(step)}\] succeeded", text)
    try:
        template = Cluster(api, namespace).sts("web").spec.template.spec.containers[0].image
    except ApiException as exc:  # a rollback may have removed what the run created
        assert exc.status == 404
    else:
        assert template == STS_OLD


# --- deployment-pause-canary -------------------------------------------------------------

APP_V1, APP_V2 = "janakiramm/myapp:v1", "janakiramm/myapp:v2"


def _by_image(replicasets: list[Any]) -> dict[str, Any]:
    return {rs.spec.template.spec.containers[0].image: rs for rs in replicasets}


def _check_deployment_done(cluster: Cluster) -> None:
    deploy = cluster.deploy("myapp")
    assert not deploy.spec.paused
    sets = _by_image(cluster.replicasets("myapp"))
    assert sets[APP_V2].spec.replicas == 6 and sets[APP_V1].spec.replicas == 0
    pods = cluster.wait_pods(lambda ps: len(ps) == 6, "6 pods (old ones gone)", "app=myapp")
    new_hash = sets[APP_V2].metadata.labels["pod-template-hash"]
    assert all(image(p) == APP_V2 and revision_hash(p) == new_hash and kubewait.pod_ready(p)
               for p in pods)
    assert deploy.status.updated_replicas == deploy.status.available_replicas == 6
    assert not deploy.status.unavailable_replicas


def test_deployment_pause_canary_end_to_end(api: client.ApiClient, namespace: str) -> None:
    with Recorder(api, namespace) as rec:
        run_ok(playbook("deployment-pause-canary"), namespace)
    _check_deployment_done(Cluster(api, namespace))
    # At some point both ReplicaSets had pods wanted: the canary ran beside the old pods.
    assert any(sum(1 for rs in state.values() if rs["spec"]["replicas"]) == 2
               for state in rec.replay("rs"))


def test_deployment_pause_canary_checkpoints(api: client.ApiClient, namespace: str,
                                             tmp_path: Path) -> None:
    cluster, name = Cluster(api, namespace), "deployment-pause-canary"
    run_ok(segment(name, tmp_path, "install", "verify-canary"), namespace)
    deploy = cluster.deploy("myapp")
    assert deploy.spec.paused and deploy.status.observed_generation == deploy.metadata.generation
    assert condition(deploy, "Progressing").reason == "DeploymentPaused"
    sets = _by_image(cluster.replicasets("myapp"))
    assert sorted(sets) == [APP_V1, APP_V2]
    new, old = sets[APP_V2], sets[APP_V1]
    assert annotation(new, REVISION) == "2" and annotation(old, REVISION) == "1"
    assert new.spec.replicas in (2, 3) and old.spec.replicas in (6, 5)
    assert new.spec.replicas + old.spec.replicas == 8  # replicas + maxSurge
    for rs in (new, old):
        pods = cluster.pods(f"pod-template-hash={rs.metadata.labels['pod-template-hash']}")
        assert len(pods) == rs.spec.replicas and all(map(kubewait.pod_ready, pods.values()))
    _check_held(cluster, {rs.metadata.name: rs.spec.replicas for rs in (new, old)})
    run_ok(segment(name, tmp_path, "resume"), namespace)
    _check_deployment_done(cluster)


def _check_held(cluster: Cluster, replicas: dict[str, int], seconds: int = 10) -> None:
    """Watch the ReplicaSets for longer than minReadySeconds: a paused rollout stays put."""
    listed = cluster.apps.list_namespaced_replica_set(cluster.ns)
    stream = watch.Watch()
    for event in stream.stream(cluster.apps.list_namespaced_replica_set, cluster.ns,
                               resource_version=listed.metadata.resource_version,
                               timeout_seconds=seconds):
        rs = event["object"]
        assert replicas.get(rs.metadata.name, 0) == rs.spec.replicas, \
            f"ReplicaSet {rs.metadata.name} moved to {rs.spec.replicas} while paused"


# --- rolling-update-undo ---------------------------------------------------------------------


def test_rolling_update_undo_end_to_end(api: client.ApiClient, namespace: str) -> None:
    with Recorder(api, namespace) as rec:
        run_ok(playbook("rolling-update-undo"), namespace)
    cluster = Cluster(api, namespace)
    deploy = cluster.deploy("ngx-dep")
    assert annotation(deploy, REVISION) == "5"
    assert annotation(deploy, CAUSE) == "部署Nginx 1.24"
    assert deploy.spec.template.spec.containers[0].image == "nginx:1.24-alpine"
    history = {annotation(rs, REVISION): (image(rs.spec.template), annotation(rs, CAUSE),
                                          annotation(rs, HISTORY))
               for rs in cluster.replicasets("ngx-dep")}
    assert history == {
        "3": ("nginx:1.27-alpine", "升级Nginx的版本到1.27", None),
        "4": ("nginx:1.25-alpine", "升级Nginx的版本到1.25", "2"),  # undo reused RS B
        "5": ("nginx:1.24-alpine", "部署Nginx 1.24", "1"),  # undo --to-revision=1 reused RS A
    }
    # Only three ReplicaSets were ever created: an undo brings an old one back.
    created = {obj["metadata"]["uid"] for kind, _, obj in rec.events if kind == "rs"}
    assert len(created) == 3
    rs_a = next(rs for rs in cluster.replicasets("ngx-dep") if annotation(rs, REVISION) == "5")
    pods = cluster.wait_pods(lambda ps: len(ps) == 4, "4 pods of revision 5", "app=ngx-dep")
    assert all(revision_hash(p) == rs_a.metadata.labels["pod-template-hash"]
               and image(p) == "nginx:1.24-alpine" and kubewait.pod_ready(p) for p in pods)


# --- headless-dns-verify -------------------------------------------------------------------


def _check_dns(cluster: Cluster, replicas: int) -> None:
    """myapp-svc -> exactly the pods' IPs, each pod name -> its IP, myapp -> its ClusterIP."""
    ns = cluster.ns
    pods = cluster.pods("app=myapp-pod")
    assert sorted(pods) == [f"myapp-{i}" for i in range(replicas)]
    ips = {n: p.status.pod_ip for n, p in pods.items()}
    assert all(p.spec.hostname == n and p.spec.subdomain == "myapp-svc" for n, p in pods.items())
    assert resolve(f"myapp-svc.{ns}.svc.cluster.local.") == set(ips.values())
    for pod_name, ip in ips.items():
        assert resolve(f"{pod_name}.myapp-svc.{ns}.svc.cluster.local.") == {ip}
    cluster_ip = cluster.core.read_namespaced_service("myapp", ns).spec.cluster_ip
    assert cluster_ip != "None" and cluster_ip.startswith("10.")
    assert resolve(f"myapp.{ns}.svc.cluster.local.") == {cluster_ip}


def test_headless_dns_verify_end_to_end(api: client.ApiClient, namespace: str) -> None:
    run_ok(playbook("headless-dns-verify"), namespace)
    cluster = Cluster(api, namespace)
    _check_dns(cluster, 2)
    for gone in ("myapp-2", "myapp-3"):
        assert resolve(f"{gone}.myapp-svc.{namespace}.svc.cluster.local.") == set()


def test_headless_dns_verify_checkpoints(api: client.ApiClient, namespace: str,
                                         tmp_path: Path) -> None:
    cluster, name = Cluster(api, namespace), "headless-dns-verify"
    proc = runplan("graph", str(playbook(name)), "--format", "dot")
    edges = set(re.findall(r'"([^"]+)" -> "([^"]+)"', proc.stdout))
    assert {e for e in edges if e[1] in ("dns-headless", "dns-clusterip", "scale-up")} == {
        ("ready", "dns-headless"), ("ready", "dns-clusterip"),
        ("dns-headless", "scale-up"), ("dns-clusterip", "scale-up")}
    run_ok(segment(name, tmp_path, "install", "dns-clusterip"), namespace)
    assert cluster.core.read_namespaced_service("myapp-svc", namespace).spec.cluster_ip == "None"
    _check_dns(cluster, 3)
    run_ok(segment(name, tmp_path, "scale-up", "dns-after-scale-up"), namespace)
    _check_dns(cluster, 4)


def test_dns_without_an_answering_nameserver_exits_1(namespace: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))  # a port nobody answers on
        server = f"127.0.0.1:{sock.getsockname()[1]}"
        started = time.monotonic()
        text = run_failing(playbook("headless-dns-verify"), namespace,
                           env={"RUNPLAN_DNS_SERVER": server})
    assert f"no answer from the nameserver {server}" in text
    assert re.search(r"\[dns-headless\] failed", text), text
    assert time.monotonic() - started < 150  # well within the step timeout (3m)


# --- readiness-gate-canary ------------------------------------------------------------------

GATE = "www.example.com/feature-1"
GATE_V2, GATE_V3 = "ikubernetes/myapp:v2", "ikubernetes/myapp:v3"


def gate(pod: Any) -> str | None:
    found = condition(pod, GATE)
    return str(found.status) if found else None


def _endpoints(cluster: Cluster) -> dict[str, bool]:
    """service-nginx's endpoints: pod name -> ready."""
    discovery: Any = client.DiscoveryV1Api(cluster.api)
    slices = discovery.list_namespaced_endpoint_slice(
        cluster.ns, label_selector="kubernetes.io/service-name=service-nginx").items
    return {e.target_ref.name: bool(e.conditions.ready) for s in slices for e in s.endpoints or []}


def test_readiness_gate_canary_end_to_end(api: client.ApiClient, namespace: str) -> None:
    with Recorder(api, namespace) as rec:
        run_ok(playbook("readiness-gate-canary"), namespace)
    cluster = Cluster(api, namespace)
    _check_gates_done(cluster)
    # maxUnavailable 0: once 2 pods were Ready, never fewer (no old pod left early).
    lowest, started = 99, False
    for state in rec.replay("pod"):
        ready = sum(1 for p in state.values() if live(p) and json_ready(p))
        started = started or ready >= 2
        lowest = min(lowest, ready) if started else lowest
    assert started and lowest >= 2


def _check_gates_done(cluster: Cluster) -> None:
    sets = _by_image(cluster.replicasets("nginx-deployment"))
    assert sets[GATE_V3].spec.replicas == 2 and sets[GATE_V2].spec.replicas == 0
    pods = cluster.wait_pods(lambda ps: len(ps) == 2, "the old pods gone", "app=nginx")
    assert all(image(p) == GATE_V3 and gate(p) == "True" and kubewait.pod_ready(p) for p in pods)
    kubewait.until(client.DiscoveryV1Api(cluster.api).list_namespaced_endpoint_slice,
                   lambda _: _endpoints(cluster) == {p.metadata.name: True for p in pods},
                   namespace=cluster.ns, what="endpoints = the 2 new pods, ready")


def test_readiness_gate_canary_checkpoints(api: client.ApiClient, namespace: str,
                                           tmp_path: Path) -> None:
    cluster, name = Cluster(api, namespace), "readiness-gate-canary"
    run_ok(segment(name, tmp_path, "install", "install"), namespace)
    pods = cluster.wait_pods(lambda ps: len(ps) == 2 and all(p.status.phase == "Running"
                                                               for p in ps), "2 running pods")
    for pod in pods:
        assert condition(pod, "ContainersReady").status == "True" and gate(pod) is None
        assert condition(pod, "Ready").reason == "ReadinessGatesNotReady"
    assert not cluster.deploy("nginx-deployment").status.available_replicas

    text = run_ok(segment(name, tmp_path, "approve-initial", "installed-ready"), namespace)
    initial = cluster.pods()
    assert sorted(re.findall(r"\[approve-initial\] approved pod (\S+)", text)) == sorted(initial)
    assert sorted(initial) == sorted(p.metadata.name for p in pods)
    assert all(gate(p) == "True" and kubewait.pod_ready(p) for p in initial.values())

    text = run_ok(segment(name, tmp_path, "new-image", "verify-canary"), namespace)
    assert len(re.findall(r"\[approve-canary\] approved pod", text)) == 1
    _check_canary_held(cluster, set(initial))

    run_ok(segment(name, tmp_path, "approve-rest"), namespace)
    _check_gates_done(cluster)


def _check_canary_held(cluster: Cluster, initial: set[str]) -> None:
    """One new pod approved and Ready, the other held; one old pod still serving."""
    sets = _by_image(cluster.replicasets("nginx-deployment"))
    new, old = sets[GATE_V3], sets[GATE_V2]
    assert annotation(new, REVISION) == "2" and new.spec.replicas == 2
    new_pods = cluster.pods(f"pod-template-hash={new.metadata.labels['pod-template-hash']}")
    assert len(new_pods) == 2
    approved = [p for p in new_pods.values() if gate(p) == "True"]
    held = [p for p in new_pods.values() if gate(p) is None]
    assert len(approved) == 1 and len(held) == 1 and not kubewait.pod_ready(held[0])
    kubewait.until(cluster.apps.list_namespaced_replica_set,
                   lambda objs: objs[old.metadata.name].spec.replicas == 1,
                   namespace=cluster.ns, what="the old ReplicaSet down to 1")
    _check_held(cluster, {new.metadata.name: 2, old.metadata.name: 1}, seconds=5)
    remaining = [n for n in cluster.pods() if n in initial]
    assert len(remaining) == 1
    kubewait.until(client.DiscoveryV1Api(cluster.api).list_namespaced_endpoint_slice,
                   lambda _: _endpoints(cluster) == {approved[0].metadata.name: True,
                                                     held[0].metadata.name: False,
                                                     remaining[0]: True},
                   namespace=cluster.ns, what="endpoints: canary and old ready, held not")


def test_wait_that_times_out_runs_the_failure_steps(api: client.ApiClient, namespace: str,
                                                    tmp_path: Path) -> None:
    doc = plan_doc("readiness-gate-canary")
    at = [s["id"] for s in doc["steps"]].index("new-image") + 1
    doc["steps"].insert(at, {"id": "too-soon", "timeout": "2s",
                             "wait_ready": {"target": "deployment/nginx-deployment"}})
    text = run_failing(write_plan(doc, tmp_path / "too-soon.yaml"), namespace)
    assert re.search(r"\[too-soon\] failed in [\d.]+s: .*timed out", text), text
    assert f"readiness gate {GATE}" in text  # why: the new pods are held by their gate
    assert not re.search(r"\[approve-canary\] succeeded", text)
    assert re.search(r"\[restore-approve\] succeeded", text) and re.search(
        r"\[restore-ready\] succeeded", text), text
    cluster = Cluster(api, namespace)
    deploy = cluster.deploy("nginx-deployment")
    assert deploy.spec.template.spec.containers[0].image == GATE_V2  # restore-image
    sets = _by_image(cluster.replicasets("nginx-deployment"))
    assert sets[GATE_V3].spec.replicas == 0
    pods = cluster.wait_pods(lambda ps: len(ps) == 2, "2 pods", "app=nginx")
    assert all(image(p) == GATE_V2 and gate(p) == "True" and kubewait.pod_ready(p) for p in pods)


# --- cloneset-partition, missing targets ---------------------------------------------------


def test_cloneset_without_its_crd_fails_clearly(api: client.ApiClient, namespace: str) -> None:
    text = run_failing(playbook("cloneset-partition"), namespace)
    assert re.search(r"\[install\] failed", text), text
    assert "CloneSet" in text and "apps.kruise.io" in text and "CRD" in text
    cluster = Cluster(api, namespace)
    assert not cluster.pods() and not cluster.apps.list_namespaced_deployment(namespace).items
    assert not cluster.core.list_namespaced_service(namespace).items
    coordination: Any = client.CoordinationV1Api(api)
    leases = coordination.list_namespaced_lease(namespace).items
    assert all(not lease.spec.holder_identity for lease in leases)  # released, if any


def test_missing_target_names_the_object(namespace: str, tmp_path: Path) -> None:
    doc = {"apiVersion": "runplan/v1", "kind": "Plan", "metadata": {"name": "missing"},
           "namespace": "{{ ns }}", "vars": {"ns": "default"},
           "steps": [{"id": "look", "verify_pods": {"target": "statefulset/nope", "count": 1}},
                     {"id": "after", "wait": {"duration": "1s"}}]}
    text = run_failing(write_plan(doc, tmp_path / "missing.yaml"), namespace)
    assert f"statefulset/nope in namespace {namespace} not found" in text
    assert re.search(r"\[look\] failed", text) and not re.search(r"\[after\] succeeded", text)


def test_partition_on_a_deployment_is_refused(api: client.ApiClient, namespace: str,
                                              tmp_path: Path) -> None:
    doc = plan_doc("rolling-update-undo")
    doc["steps"] = doc["steps"][:2] + [
        {"id": "bad", "set_partition": {"target": "deployment/ngx-dep", "partition": 2}}]
    proc = runplan(str(write_plan(doc, tmp_path / "bad.yaml")), "-e", f"ns={namespace}")
    text = output(proc)
    assert proc.returncode in (1, 2), text  # refused when validating, or by the step
    assert "partition is not valid on a Deployment" in text, text
    deployments = Cluster(api, namespace).apps.list_namespaced_deployment(namespace).items
    assert all(d.spec.template.spec.containers[0].image == "nginx:1.24-alpine"
               for d in deployments)
