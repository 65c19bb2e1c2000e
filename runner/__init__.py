"""runplan: declarative rollout plans for Kubernetes."""

from __future__ import annotations

__version__ = "0.1.0"
