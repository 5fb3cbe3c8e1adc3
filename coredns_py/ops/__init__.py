"""Operating the server: what an operator sees and asks, never on the DNS path.

- ``http``      -- the HTTP listener (its own threads): routes, limits
- ``health``    -- /health with a lame duck, /ready
- ``metrics``   -- Prometheus metrics under CoreDNS's names: registry, hot path, hooks
- ``scrape``    -- what /metrics renders, worked out at scrape time
- ``page``      -- the status page's document, from one generation
- ``query_box`` -- the page's query box: ``answer()`` shown as dig shows it
- ``querylog``  -- one line per query (``--log-queries``)
- ``table``     -- ``coredns-py get``, as kubectl prints it

Every reader takes the server's current generation once per request
(:mod:`coredns_py.generation`).
"""
