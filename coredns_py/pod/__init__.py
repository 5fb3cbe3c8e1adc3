"""The pod side: what a container in a pod sees besides DNS answers.

- ``envvars``   -- the ``*_SERVICE_HOST/PORT`` variables the kubelet injects
- ``resolvconf`` -- the resolv.conf of a ``ClusterFirst`` pod
"""
