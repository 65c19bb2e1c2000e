"""Local Kubernetes control plane for runplan's tests, demo and benchmarks."""
