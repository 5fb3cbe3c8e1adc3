"""The stage chain: order, skipping stages that are off, results that come later."""

from __future__ import annotations

import asyncio

from coredns_py.stages import chain, then


def tagging(tag: bytes):
    def stage(inner):
        def handler(wire, proto, peer):
            return then(inner(wire + tag, proto, peer), lambda out: out + tag)
        return handler
    return stage


def test_the_first_stage_is_outermost_and_off_stages_are_skipped():
    handler = chain(lambda wire, proto, peer: wire + b"|", [tagging(b"a"), None, tagging(b"b")])
    # a sees the query first and the response last
    assert handler(b"q", "udp", ("127.0.0.1", 1)) == b"qab|ba"


def test_no_stage_is_the_core_itself():
    def core(wire, proto, peer):
        return wire
    assert chain(core, [None, None]) is core


def test_then_reaches_answers_that_come_later_and_keeps_none():
    async def later():
        return b"upstream"

    async def nothing():
        return None

    async def main():
        assert await then(later(), lambda out: out.upper()) == b"UPSTREAM"
        assert await then(nothing(), lambda out: out.upper()) is None

    asyncio.run(main())
    assert then(None, lambda out: out.upper()) is None
    assert then(b"x", lambda out: out.upper()) == b"X"
