"""coredns_py: Kubernetes cluster DNS from a folder of manifests, without a cluster."""

__version__ = "0.1.0"
