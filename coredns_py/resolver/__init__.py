"""Everything else resolves too: names outside our zones (and the targets of
ExternalNames pointing outside) go to upstream servers (CoreDNS ``forward``
and ``cache``).

- ``forward``   -- completes ``answer()``'s Forward outcomes with upstream data
- ``cache``     -- upstream answers kept for their TTL (RFC 2308 for negatives)
- ``acl``       -- which clients may recurse (not an open resolver)
- ``upstreams`` -- the upstream servers: addresses and resolv.conf files
"""
