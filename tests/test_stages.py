"""The stage chain: order, skipping stages that are off, results that come later;
which stages the server puts in it, and their config keys."""

from __future__ import annotations

import asyncio

import pytest

from coredns_py import config, stages
from coredns_py.errors import ConfigError
from coredns_py.server import Server
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


# --- which stages are on -----------------------------------------------------------

@pytest.mark.parametrize("listens, exposed", [
    ([("127.0.0.1", 53)], False),
    ([("::1", 53), ("127.0.0.2", 53)], False),
    ([("127.0.0.1", 53), ("172.17.0.1", 53)], True),
    ([("0.0.0.0", 53)], True),
    ([("::", 53)], True),
])
def test_exposed_means_some_address_beyond_loopback(listens, exposed):
    assert stages.exposed(listens) is exposed


@pytest.mark.parametrize("switch, exposed, on", [
    ("auto", False, False), ("auto", True, True), ("on", False, True), ("off", True, False)])
def test_auto_is_on_only_when_exposed(switch, exposed, on):
    assert stages.wanted(switch, exposed) is on


@pytest.mark.parametrize("listens, cfg, names", [
    ([("127.0.0.1", 53)], {}, []),
    ([("192.0.2.1", 53)], {}, ["cookies", "rate_limit"]),
    ([("192.0.2.1", 53)], {"cookies": False}, ["rate_limit"]),
    ([("127.0.0.1", 53)], {"rate_limit": True}, ["rate_limit"]),
])
def test_the_server_builds_the_chain_cookies_first(listens, cfg, names):
    server = Server(None, config.parse({"transfer_to": [], **cfg}), listens)
    server._start_stages()
    built = server._stages()
    assert [n for n, s in zip(["cookies", "rate_limit"], built) if s is not None] == names
    assert (server.cookies is not None) == ("cookies" in names)
    assert built[:2] == [server.cookies, server.rate_limit]
    assert (server.entry == server.handle) == (names == [])


def test_a_config_reload_keeps_stages_whose_settings_did_not_change():
    # A reload must forget neither the cookie secret (every client's cookie
    # would turn invalid) nor the rate accounts.
    listens = [("192.0.2.1", 53)]
    server = Server(None, config.parse({}), listens)
    server._start_stages()
    cookies, rate_limit = server.cookies, server.rate_limit
    server.config = config.parse({"ttl": 30})
    server._start_stages()
    assert (server.cookies, server.rate_limit) == (cookies, rate_limit)
    server.config = config.parse({"rate_limit_slip": 1, "cookie_secret": "00" * 16})
    server._start_stages()
    assert server.rate_limit is not rate_limit and server.rate_limit.slip == 1
    assert server.cookies is not cookies and server.cookies.secret == bytes(16)
    server.config = config.parse({"rate_limit": False, "cookies": False, "transfer_to": []})
    server._start_stages()
    assert (server.cookies, server.rate_limit, server.entry) == (None, None, server.handle)


def test_config_keys():
    cfg = config.parse({"rate_limit": True, "cookies": "AUTO", "rate_limit_slip": 0,
                        "rate_limit_responses_per_second": 5, "udp_receive_buffer": 0,
                        "cookie_secret": "00112233445566778899aabbccddeeff"})
    assert (cfg.rate_limit, cfg.cookies, cfg.rate_limit_slip) == ("on", "auto", 0)
    assert config.parse({"cookies": False}).cookies == "off"
    defaults = config.Config()
    assert (defaults.rate_limit, defaults.cookies, defaults.rate_limit_responses_per_second,
            defaults.rate_limit_slip, defaults.cookie_secret) == ("auto", "auto", 200, 2, "")


@pytest.mark.parametrize("data, key", [
    ({"rate_limit": "maybe"}, "rate_limit"),
    ({"cookies": 1}, "cookies"),
    ({"rate_limit_responses_per_second": 0}, "rate_limit_responses_per_second"),
    ({"rate_limit_slip": 11}, "rate_limit_slip"),
    ({"cookie_secret": "abc"}, "cookie_secret"),
    ({"cookie_secret": "00" * 17}, "cookie_secret"),
    ({"udp_receive_buffer": -1}, "udp_receive_buffer"),
])
def test_config_errors_name_the_key_and_file(data, key):
    with pytest.raises(ConfigError) as err:
        config.parse(data, "my.yaml")
    assert key in str(err.value) and "my.yaml" in str(err.value)


def test_then_on_a_task_is_a_future_whose_cancel_reaches_the_task():
    # Forwarded answers are tasks; a transport cancels what it will not send
    # (client gone, too many pending): the cancel must reach the task.
    async def main():
        started = asyncio.Event()

        async def upstream():
            started.set()
            await asyncio.sleep(10)
            return b"late"

        task = asyncio.ensure_future(upstream())
        wrapped = then(then(task, lambda out: out + b"!"), lambda out: out + b"?")
        assert isinstance(wrapped, asyncio.Future)
        await started.wait()
        wrapped.cancel()
        for _ in range(10):  # each link hears of it a turn of the loop later
            await asyncio.sleep(0)
        assert task.cancelled()

        done = asyncio.ensure_future(asyncio.sleep(0, b"ok"))
        assert await then(then(done, lambda out: out + b"!"), lambda out: out + b"?") == b"ok!?"
        none = asyncio.ensure_future(asyncio.sleep(0, None))
        assert await then(none, lambda out: out + b"!") is None

        async def broken():
            raise RuntimeError("upstream bug")
        with pytest.raises(RuntimeError):
            await then(asyncio.ensure_future(broken()), lambda out: out)

    asyncio.run(main())
