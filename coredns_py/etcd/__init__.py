"""etcd, the shared store of the cluster: the client (endpoints, failover,
TLS, user and password; :mod:`.client`), its watch stream (:mod:`.watch`)
and where things live under the prefix (:mod:`.layout`).

A publisher (:mod:`coredns_py.publish`) writes the filled-in cluster here;
replicas (:mod:`coredns_py.cluster.etcd`) read it.  Kubernetes keeps its
objects the same way: one key per object under a prefix, listed at a
revision, then watched from the next one.
"""
