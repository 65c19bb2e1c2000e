"""The kwok stages a cluster runs with: localcluster/kwok-stages.yaml plus its start delay.

The YAML file is the behaviour (see its header). `up --pod-start-delay 1s`
changes three things in it, so that every pod, not only one annotated
`localcluster.runplan.dev/start-delay`, is Running but not Ready for that long:
the immediate `pod-ready` stage goes, `pod-start-slow` takes every pod with a
working image, and `pod-warm-up` waits the delay unless the pod's annotation
says otherwise. Without a delay the file is used as it is, so pods still become
Ready in one status write and the other tests stay fast.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from localcluster.errors import ClusterSetupError

SOURCE = Path(__file__).with_name("kwok-stages.yaml")
START_DELAY_ANNOTATION = "localcluster.runplan.dev/start-delay"
IMMEDIATE, SLOW, WARM_UP = "pod-ready", "pod-start-slow", "pod-warm-up"

_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def delay_ms(text: str) -> int:
    """A Go duration ("1s", "500ms", "1m30s"), as kwok reads the annotation, in ms."""
    text = text.strip()
    parts = _PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ClusterSetupError(
            f"--pod-start-delay {text!r}: not a duration like 1s, 500ms or 1m30s"
        )
    return round(sum(float(number) * _UNIT_MS[unit] for number, unit in parts))


def documents(pod_start_delay: str | None = None) -> list[dict[str, Any]]:
    """The stages, with the cluster-wide start delay applied when there is one."""
    docs = [d for d in yaml.safe_load_all(SOURCE.read_text()) if d]
    millis = delay_ms(pod_start_delay) if pod_start_delay else 0
    if millis <= 0:
        return docs
    by_name = {d["metadata"]["name"]: d for d in docs}
    slow = by_name[SLOW]["spec"]["selector"]
    slow["matchExpressions"] = [e for e in slow["matchExpressions"]
                                if START_DELAY_ANNOTATION not in e["key"]]
    by_name[WARM_UP]["spec"]["delay"]["durationMilliseconds"] = millis
    return [d for d in docs if d["metadata"]["name"] != IMMEDIATE]


def render(pod_start_delay: str | None = None) -> str:
    # JSON documents are YAML: nothing for kwok's loader to read differently.
    return "\n---\n".join(json.dumps(d, indent=1) for d in documents(pod_start_delay)) + "\n"


def path(state_dir: Path) -> Path:
    return state_dir / "kwok-stages.yaml"


def write(state_dir: Path, pod_start_delay: str | None = None) -> Path:
    target = path(state_dir)
    target.write_text(render(pod_start_delay))
    return target


def differs(state_dir: Path, pod_start_delay: str | None = None) -> bool:
    """True when a running cluster's stages are not what `up` would write now."""
    try:
        return path(state_dir).read_text() != render(pod_start_delay)
    except OSError:
        return True
