"""The DNS core: the cluster zone as an immutable snapshot, and the pure
function that answers a query from it.

- ``snapshot``     -- everything a query needs, built once per generation
- ``names``        -- how owner names are built and read back (the schema)
- ``lookup``       -- what a name holds: rcode and records (every zone rule)
- ``answer``       -- the message around it: ``answer(snapshot, wire) -> wire``
- ``wire``         -- size limits; rendering; FORMERR and SERVFAIL
- ``records``      -- records as plain values: what lookup builds, wire writes
- ``prepared``     -- the hot path: answers kept as bytes, across reloads
- ``exposed``      -- which namespaces and Services the zones expose (filters)
- ``external``     -- the k8s_external zones: their settings, as the snapshot keeps them
- ``transfer``     -- what a zone transfer (AXFR) of one of our zones holds

Nothing here reads a socket, a file or the clock.  A new record type goes in
``lookup`` (and, if it needs data precomputed, in ``snapshot``).
"""
