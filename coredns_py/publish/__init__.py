"""The publisher: one folder, filled in once, written to etcd for every
replica (``coredns-py publish``).

- :mod:`.leader`: only one publisher writes at a time, the holder of an
  etcd lease; another one waits and takes over when it dies;
- :mod:`.allocations`: the allocation state (who holds which ClusterIP,
  pod IP, NodePort) kept in etcd instead of the local state file, written
  in transactions only the leader can make;
- :mod:`.writer`: one publish, written as only what changed, in
  transactions within etcd's limits, made visible at once;
- :mod:`.publisher`: the loop: lead, load the folder as ``serve`` does,
  publish, watch the folder, publish each change.
"""
