"""Files that explode, in the source itself: what is refused and why, that
nothing walks an expanded value, that one file's failure stays that file's,
and when a changed file is published (the settle rule).

The same cases against a running server: tests/test_hostile_server.py."""

from __future__ import annotations

import os
import random
import re
import threading
import time
from pathlib import Path

import pytest
import yaml

from coredns_py.errors import RefusedFile
from coredns_py.source import bounds, objects as o
from coredns_py.source.documents import documents
from coredns_py.source.folder import ManifestSource
from coredns_py.source.settle import Settling
from helpers.hostile import HOSTILE, SMALL_LIMIT, alias_bomb
from helpers.manifests import service


def services(loaded) -> dict:
    return {f"{x.namespace}/{x.name}": x.cluster_ips for x in loaded.objects
            if isinstance(x, o.Service)}


def refused(loaded) -> dict:
    """file name -> reason, for every file not read at all."""
    return {Path(e.path).name: e.reason for e in loaded.errors if isinstance(e, RefusedFile)}


def within(seconds: float, fn, *args):
    """fn(*args) in a thread; its result, or a failure if it takes longer."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still running after {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


# --- every hostile file is that file's error, the rest is served ------------------

EXPECTED_REASON = {
    "alias-bomb-in-error": "too_many_aliases",
    "alias-bomb-bad-scalar": "too_many_aliases",
    "fifo": "not_regular_file",
    "symlink-dev-zero": "not_regular_file",
    "nested-yaml": "too_deep",
    "nested-json": "too_deep",
    "too-large": "too_large",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_file_is_refused_and_the_rest_served(tmp_path, case):
    name, make = HOSTILE[case]
    (tmp_path / "good.yaml").write_text(service("good", cluster_ip="10.96.0.2"))
    make(tmp_path / name)
    src = ManifestSource(tmp_path, log_errors=False, max_file_bytes=SMALL_LIMIT)
    loaded = within(10, src.load)
    assert services(loaded) == {"default/good": ("10.96.0.2",)}
    assert refused(loaded) == {name: EXPECTED_REASON[case]}
    [err] = loaded.errors
    assert str(err).startswith(str(tmp_path / name)), str(err)
    assert len(str(err)) < 300, "an error message names the problem, it never prints the value"


def test_the_reasons_in_words(tmp_path):
    for case in ("fifo", "symlink-dev-zero", "too-large", "nested-json"):
        name, make = HOSTILE[case]
        make(tmp_path / name)
    src = ManifestSource(tmp_path, log_errors=False, max_file_bytes=SMALL_LIMIT)
    errs = sorted(str(e).replace(str(tmp_path) + "/", "") for e in src.load().errors)
    assert errs == [
        "deep.json: nested more than 1000 levels deep (the limit for a document)",
        f"large.yaml: {(tmp_path / 'large.yaml').stat().st_size} bytes, over the limit of "
        f"{SMALL_LIMIT} bytes (config "
        "key max_file_bytes)",
        "x.yaml: not a regular file (a FIFO); only regular files are read",
        "zero.yaml: not a regular file (a character device); only regular files are read",
    ]


def test_a_file_that_turns_hostile_keeps_its_last_good_objects(tmp_path):
    path = tmp_path / "svc.yaml"
    path.write_text(service("web", cluster_ip="10.96.0.7"))
    src = ManifestSource(tmp_path, log_errors=False)
    assert services(src.load()) == {"default/web": ("10.96.0.7",)}
    path.unlink()
    os.mkfifo(path)
    loaded = within(10, src.load)
    assert services(loaded) == {"default/web": ("10.96.0.7",)}
    assert refused(loaded) == {"svc.yaml": "not_regular_file"}


def test_only_problems_changing_is_a_new_generation(tmp_path):
    # /metrics and the status page read the generation: a file that breaks
    # without changing any object must still show up there.
    (tmp_path / "good.yaml").write_text(service("good", cluster_ip="10.96.0.2"))
    src = ManifestSource(tmp_path, log_errors=False)
    first = src.load()
    os.mkfifo(tmp_path / "x.yaml")
    second = src.load()
    assert second.objects == first.objects and second.generation == first.generation + 1
    assert src.load().generation == second.generation


def test_an_unexpected_exception_is_that_files_error(tmp_path):
    # json turns a 5,000-digit number into a ValueError that is no
    # JSONDecodeError (Python's int size limit for decimal text).
    (tmp_path / "big.json").write_text('{"n": ' + "1" * 5000 + "}")
    (tmp_path / "good.yaml").write_text(service("good", cluster_ip="10.96.0.2"))
    loaded = ManifestSource(tmp_path, log_errors=False).load()
    assert services(loaded) == {"default/good": ("10.96.0.2",)}
    [err] = [str(e) for e in loaded.errors]
    assert err.startswith(f"{tmp_path / 'big.json'}: cannot read: ValueError"), err


# --- aliases: as go-yaml counts them -------------------------------------------------

def test_the_bomb_is_refused_before_it_is_built():
    started = time.monotonic()
    with pytest.raises(RefusedFile) as err:
        documents(alias_bomb(), "bomb.yaml")
    assert time.monotonic() - started < 2
    assert err.value.reason == "too_many_aliases"
    # 9 ** 9 = 387 million lols in a8 alone; every level's aliases counted, as
    # go-yaml counts them (a1..a8: 9 aliases each, of sizes 10, 91, 820 ...).
    assert str(err.value).startswith("bomb.yaml:1: aliases expand it to 490,329,136 nodes, "
                                     "490,329,036 of them repeated by aliases"), str(err.value)


def test_a_wide_shallow_bomb_is_refused_too():
    # Twenty aliases per level: under 5% of the decodes are aliases at each
    # level, but almost all of them come from alias expansion.
    with pytest.raises(RefusedFile, match="aliases expand it"):
        documents(alias_bomb(levels=5, width=20), "bomb.yaml")


def test_aliases_a_manifest_uses_are_fine():
    text = """\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web, labels: &labels {app: web, tier: front}}
        spec:
          selector: {matchLabels: *labels}
          template:
            metadata: {labels: *labels}
            spec:
              containers:
              - &c {name: a, image: x, ports: [{containerPort: 80}]}
              - *c
        """
    [(_, doc, _)] = documents(text.replace("        ", ""), "d.yaml")
    assert doc["spec"]["template"]["metadata"]["labels"] == {"app": "web", "tier": "front"}


def test_alias_ratio_follows_go_yaml():
    assert bounds.allowed_alias_ratio(1000) == 0.99
    assert bounds.allowed_alias_ratio(400_000) == 0.99
    assert bounds.allowed_alias_ratio(2_200_000) == pytest.approx(0.545)
    assert bounds.allowed_alias_ratio(4_000_000) == 0.10
    assert bounds.allowed_alias_ratio(40_000_000) == 0.10


def test_the_share_of_decodes_from_aliases_is_the_line():
    # An anchor of 201 nodes aliased n times, beside m plain nodes.  Decodes:
    # 207 distinct nodes + m, one per alias, and 201 per alias expanded.
    def doc(n: int, m: int) -> str:
        return ("a: &a [" + ", ".join(map(str, range(200))) + "]\nb: ["
                + ", ".join(["*a"] * n) + "]\nc: [" + ", ".join(["0"] * m) + "]\n")
    documents(doc(100, 0), "ok.yaml")  # 20,100 of 20,407 decodes: 98.5%
    documents(doc(1000, 2000), "ok.yaml")  # 201,000 of 204,207: 98.4%
    with pytest.raises(RefusedFile, match="aliases expand it to 202,207 nodes, 201,000 of "
                                          "them repeated by aliases"):
        documents(doc(1000, 0), "bad.yaml")  # 201,000 of 202,207: 99.4%, over 99%


def test_a_recursive_anchor_is_refused():
    with pytest.raises(RefusedFile, match="contains an alias of itself"):
        documents("a: &a [1, *a]\n", "r.yaml")


def test_a_chain_of_aliases_nests_as_deep_as_it_is_long():
    chain = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 1100))
    with pytest.raises(RefusedFile, match="nested more than 1000 levels"):
        documents(chain, "chain.yaml")
    # A short chain is fine (5,049 of its 5,350 decodes come from aliases).
    documents("a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 100)),
              "short-chain.yaml")


# --- nesting -------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "a: " + "[" * 1001 + "]" * 1001,
    "a: " + "{a: " * 1001 + "b" + "}" * 1001,
    "- " * 1001 + "x",
    "".join("  " * i + f"k{i}:\n" for i in range(1001)) + "  " * 1001 + "x\n",
    "".join(" " * i + f"k{i}:\r" for i in range(1001)) + " " * 1001 + "x\r",  # old Mac breaks
], ids=["flow-seq", "flow-map", "compact-seq", "block-map", "cr-breaks"])
def test_nesting_beyond_the_limit_is_refused(text):
    with pytest.raises(RefusedFile, match="nested more than 1000 levels"):
        within(10, documents, text, "deep.yaml")


def test_nesting_at_the_limit_is_read():
    [(_, doc, _)] = documents("[" * 999 + "]" * 999, "ok.yaml")
    assert isinstance(doc, list)


def _depth(node) -> int:
    """Levels of a composed node (a scalar is one), without recursion."""
    best, stack = 0, [(node, 1)]
    while stack:
        n, d = stack.pop()
        best = max(best, d)
        children = n.value if isinstance(n, yaml.SequenceNode) else (
            [c for pair in n.value for c in pair] if isinstance(n, yaml.MappingNode) else [])
        stack.extend((c, d + 1) for c in children)
    return best


def _random_yaml(rng: random.Random, depth: int) -> str:
    """A random document nested ``depth`` deep, in any mix of styles."""
    data: object = "x"
    for _ in range(depth):
        data = rng.choice([lambda d: [d], lambda d: {"k": d}, lambda d: [1, d, "a: b"],
                           lambda d: {"a": 1, "b": d}])(data)
    return yaml.safe_dump(data, default_flow_style=rng.choice([None, True, False]),
                          width=rng.choice([20, 80, 10_000]), indent=rng.choice([2, 4]))


def test_the_nesting_bound_is_never_below_the_real_depth():
    # may_nest_deeper() lets libyaml compose a text unchecked: it must never
    # say "shallow enough" for a text that nests deeper than the limit.
    rng = random.Random(14)
    for _ in range(300):
        text = _random_yaml(rng, rng.randint(1, 60))
        limit = rng.randint(5, 200)
        node = yaml.compose(text, Loader=yaml.CSafeLoader)
        if _depth(node) > limit:
            assert bounds.may_nest_deeper(text, limit), (limit, text[:200])


def test_manifests_are_composed_without_the_counting_loader():
    # The fast path for what real folders hold: the bench's manifests, a
    # kubectl dump with long lines.
    text = service("web", cluster_ip="10.96.0.7") * 200
    assert not bounds.may_nest_deeper(text)


# --- messages never walk values ------------------------------------------------------

def test_a_wrong_type_names_the_kind_of_value_not_its_content(tmp_path):
    (tmp_path / "s.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n"
        "  big: &big [" + ", ".join(["abc"] * 500) + "]\nspec:\n  type: *big\n")
    [err] = [str(e) for e in ManifestSource(tmp_path, log_errors=False).load().errors]
    assert err.endswith("field spec.type: expected string, got a list"), err


def test_a_long_string_is_cut_in_a_message(tmp_path):
    (tmp_path / "s.yaml").write_text(service("s", cluster_ip="x" * 100_000))
    [err] = [str(e) for e in ManifestSource(tmp_path, log_errors=False).load().errors]
    assert re.search(r"""["']x{8}""", err) and "[...]" in err and len(err) < 300, err


# --- settling: a changed file is read once it stops changing -------------------------

def settled_source(tmp_path: Path, seconds: float = 0.3):
    settle = Settling(seconds)
    return ManifestSource(tmp_path, log_errors=False, settle=settle), settle


def age(path: Path, seconds: float) -> None:
    """Set the file's mtime ``seconds`` in the past."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_a_file_still_being_written_is_held_back(tmp_path):
    path = tmp_path / "svc.yaml"
    path.write_text(service("web", cluster_ip="10.96.0.7"))
    age(path, 10)
    src, settle = settled_source(tmp_path)
    assert services(src.load()) == {"default/web": ("10.96.0.7",)}
    # Rewritten in place: truncated, half written (the Service without its
    # clusterIP would get a new, wrong address).
    path.write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n")
    assert services(src.load()) == {"default/web": ("10.96.0.7",)}
    assert settle.due is not None and 0 < settle.due <= 0.3
    path.write_text(service("web", cluster_ip="10.96.0.8"))
    time.sleep(0.35)
    assert services(src.load()) == {"default/web": ("10.96.0.8",)}
    assert settle.due is None


def test_a_new_file_is_published_once_settled_and_a_moved_in_one_at_once(tmp_path):
    src, settle = settled_source(tmp_path)
    src.load()
    (tmp_path / "new.yaml").write_text(service("new", cluster_ip="10.96.0.9"))
    assert services(src.load()) == {}
    time.sleep(0.35)
    assert services(src.load()) == {"default/new": ("10.96.0.9",)}
    # A finished file moved in keeps its old mtime: nothing to wait for.
    outside = tmp_path.parent / "moved.yaml"
    outside.write_text(service("moved", cluster_ip="10.96.0.10"))
    age(outside, 10)
    os.rename(outside, tmp_path / "moved.yaml")
    assert services(src.load())["default/moved"] == ("10.96.0.10",)


def test_a_truncated_looking_rewrite_waits_even_with_an_old_mtime(tmp_path):
    path = tmp_path / "svc.yaml"
    path.write_text(service("a", cluster_ip="10.96.0.2") + "---\n"
                    + service("b", cluster_ip="10.96.0.3"))
    age(path, 10)
    src, settle = settled_source(tmp_path)
    assert len(services(src.load())) == 2
    path.write_text("")  # emptied, and its mtime set back (a coarse or lying clock)
    age(path, 10)
    assert len(services(src.load())) == 2, "an emptied file must not be published at once"
    time.sleep(0.35)
    assert services(src.load()) == {}, "once it stays empty, it is published"


def test_a_file_that_disappears_is_kept_for_the_settle_time(tmp_path):
    path = tmp_path / "svc.yaml"
    path.write_text(service("web", cluster_ip="10.96.0.7"))
    age(path, 10)
    src, _ = settled_source(tmp_path)
    src.load()
    path.unlink()
    assert services(src.load()) == {"default/web": ("10.96.0.7",)}  # rm, then write?
    time.sleep(0.35)
    assert services(src.load()) == {}


def test_an_mtime_in_the_future_cannot_hold_a_file_forever(tmp_path):
    path = tmp_path / "svc.yaml"
    path.write_text(service("web", cluster_ip="10.96.0.7"))
    t = time.time() + 3600
    os.utime(path, (t, t))
    src, _ = settled_source(tmp_path)
    src.load()
    time.sleep(0.35)
    assert services(src.load()) == {"default/web": ("10.96.0.7",)}


def test_the_first_load_waits_for_files_being_written(tmp_path):
    path = tmp_path / "svc.yaml"
    path.write_text(service("web", cluster_ip="10.96.0.7"))  # just written
    src, _ = settled_source(tmp_path, seconds=0.2)
    started = time.monotonic()
    assert services(src.load()) == {"default/web": ("10.96.0.7",)}
    assert time.monotonic() - started < 2


def test_a_held_back_change_wakes_the_watcher(tmp_path):
    path = tmp_path / "svc.yaml"
    path.write_text(service("web", cluster_ip="10.96.0.7"))
    age(path, 10)
    src, settle = settled_source(tmp_path, seconds=0.2)
    woken = threading.Event()
    settle.wake = woken.set  # what watch() sets: the server's "something changed"
    try:
        src.load()
        path.write_text(service("web", cluster_ip="10.96.0.8"))
        held = time.monotonic()
        src.load()  # held back: a timer wakes the server when it is due
        assert woken.wait(5)
        assert time.monotonic() - held >= 0.1
        assert services(src.load()) == {"default/web": ("10.96.0.8",)}
    finally:
        settle.stop()


@pytest.mark.parametrize("case", ["fifo", "nested-yaml", "alias-bomb-bad-scalar"])
def test_a_hostile_kustomization_is_refused_like_a_manifest(tmp_path, case):
    # kustomization.yaml is read and parsed as manifests are (its namespace
    # decides where the files it lists land).
    _name, make = HOSTILE[case]
    (tmp_path / "good.yaml").write_text(service("good", cluster_ip="10.96.0.2"))
    make(tmp_path / "kustomization.yaml")
    loaded = within(10, ManifestSource(tmp_path, log_errors=False).load)
    assert services(loaded) == {"default/good": ("10.96.0.2",)}
    assert refused(loaded) == {"kustomization.yaml": EXPECTED_REASON[case]}
