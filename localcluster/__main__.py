"""python -m localcluster up|down|status|build [--state-dir DIR] [--audit-log] [--with EXTRA]...
python -m localcluster user NAME [--group G]... [--state-dir DIR]

`up --with gateway-api` also installs the Gateway API standard-channel CRDs;
`up --with prometheus` also starts Prometheus and prints RUNPLAN_PROMETHEUS_URL.

`up --audit-log` has the API server write every request (Metadata level, JSON
lines) to DIR/audit.log; off by default. `up --pod-start-delay 1s`: every pod is
Running but not Ready for 1 s after it starts (one pod: the annotation
localcluster.runplan.dev/start-delay). `user` writes DIR/users/NAME.kubeconfig,
a client-certificate identity (CN=NAME, O=each group) with no rights until RBAC
grants them, and prints its path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from localcluster import cluster
from localcluster.errors import ClusterSetupError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status", "build", "user"))
    parser.add_argument("name", nargs="?", help="user: the user name (the certificate's CN)")
    parser.add_argument("--group", action="append", default=[],
                        help="user: a group of the user (repeatable; the certificate's O)")
    parser.add_argument("--state-dir", type=Path, default=Path(".localcluster"))
    parser.add_argument(
        "--audit-log",
        action="store_true",
        help="up: log every API request (Metadata level) to STATE_DIR/audit.log",
    )
    parser.add_argument(
        "--with",
        dest="extras",
        action="append",
        default=[],
        choices=tuple(cluster.EXTRAS),
        help="up: also install/start an extra (repeatable): gateway-api = the Gateway API "
        "CRDs, prometheus = Prometheus (prints RUNPLAN_PROMETHEUS_URL)",
    )
    parser.add_argument(
        "--pod-start-delay",
        metavar="DURATION",
        help="up: every pod is Running but not Ready for DURATION (e.g. 1s) after it starts",
    )
    args = parser.parse_args(argv)
    # Progress goes to stderr so `eval "$(python -m localcluster up)"` works.
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    try:
        if args.command == "up":
            endpoints = cluster.up(args.state_dir, log, audit_log=args.audit_log,
                                   extras=tuple(args.extras),
                                   pod_start_delay=args.pod_start_delay)
            print(endpoints.exports())
        elif args.command == "down":
            cluster.down(args.state_dir, log)
        elif args.command == "user":
            if not args.name:
                parser.error("user needs a NAME")
            from localcluster import users

            print(users.create(args.state_dir, args.name, args.group))
        elif args.command == "build":
            from localcluster import build, gatewayapi, prometheus

            build.build_all(log)
            gatewayapi.fetch(log)  # every extra too: `make test` needs them all
            print(build.bin_dir())
            print(prometheus.build(log))
        else:
            return _status(args.state_dir)
    except ClusterSetupError as exc:
        print(f"localcluster: {exc}", file=sys.stderr)
        return 1
    return 0


def _status(state_dir: Path) -> int:
    running = cluster.status(state_dir)
    if not running:
        print(f"no local cluster running in {state_dir}")
        return 1
    for name, alive in running.items():
        print(f"{name:<24} {'running' if alive else 'stopped'}")
    return 0 if all(running.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
