"""`connect()`: a `Kube` for a kubeconfig context, checked before anyone uses it.

The check asks the API who we are (SelfSubjectReview), so an unreachable server
or rejected credentials fail here as ClusterUnreachable (exit 3) with a sentence
that names the server and context, never a secret.
"""

from __future__ import annotations

from runner.errors import ClusterError, ClusterUnreachable, NotFound, RetryLater
from runner.kube.client import Kube
from runner.kube.errors import Call
from runner.kube.kubeconfig import Identity, load
from runner.kube.transport import CONNECT_TIMEOUT, Transport


def connect(kubeconfig: str | None = None, context: str | None = None,
            namespace: str | None = None) -> Kube:
    """A checked client: raises ClusterUnreachable (exit 3) if the API is not usable."""
    settings = load(kubeconfig, context, namespace)
    transport = Transport(settings.configuration)
    try:
        identity = check(transport, settings.identity)
    except ClusterUnreachable:
        transport.close()
        raise
    return Kube(transport, settings.namespace, identity)


def check(transport: Transport, identity: Identity) -> Identity:
    """Ask the API who we are; unreachable or unauthorized -> ClusterUnreachable.
    The answer is `identity` with the user the API server authenticated."""
    try:
        user = _whoami(transport)
    except ClusterError as exc:
        raise ClusterUnreachable(_unreachable(identity, exc)) from None
    return Identity(identity.server, identity.context, identity.user, user)


def _whoami(transport: Transport) -> str | None:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    try:
        answer = transport.once("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                Call("create selfsubjectreviews"), body=review,
                                timeout=CONNECT_TIMEOUT)
    except NotFound:  # API servers before 1.28: an authenticated read proves access
        transport.once("GET", "/api", Call("get /api"), timeout=CONNECT_TIMEOUT)
        return None
    user = ((answer.get("status") or {}).get("userInfo") or {}).get("username")
    return str(user) if user else None


def _unreachable(identity: Identity, exc: ClusterError) -> str:
    where = f"the Kubernetes API at {identity.server}"
    if identity.context:
        where += f" (context {identity.context}, user {identity.user or '-'})"
    if exc.status == 401:
        return f"{where} rejected the credentials (401 Unauthorized)"
    if exc.status == 403:
        return f"{where} refused access: {exc}"
    if isinstance(exc, RetryLater) and exc.status == 0:
        return f"cannot reach {where}: {str(exc).split(': ', 1)[-1]}"
    return f"cannot use {where}: {exc}"
