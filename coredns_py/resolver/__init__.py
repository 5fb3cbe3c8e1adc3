"""Everything else resolves too: names outside our zones (and the targets of
ExternalNames pointing outside) go to upstream servers (CoreDNS ``forward``
and ``cache``).

- ``forward``        -- completes ``answer()``'s Forward outcomes with upstream data
- ``domains``        -- which upstreams a name goes to (longest suffix wins)
- ``pool``           -- one domain's upstreams: policy, health, transport
- ``health``         -- CoreDNS's health checks (``. IN NS``) and max_fails
- ``transport``      -- one question to one upstream: UDP, TCP, DNS over TLS
- ``forward_config`` -- the ``forward`` config key (per-domain options)
- ``cache``          -- upstream answers kept for their TTL (RFC 2308 for
  negatives), prefetch and serve_stale
- ``acl``            -- which clients may recurse (not an open resolver)
- ``upstreams``      -- the upstream servers: addresses, tls://, resolv.conf files
"""
