"""RFC 9162 hashing and proofs against the published RFC 6962 test vectors.

The vectors are copied from transparency-dev/merkle (Apache-2.0): the leaf inputs and root
hashes from ``testonly/constants.go``; the inclusion and consistency proofs from
``proof/verify_test.go`` (``inclusionProofs``, ``consistencyProofs``; their leaf numbers are
1-based). They were computed by Google's certificate-transparency code, not by us.
"""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from auditbird.stores.merkle import (
    EMPTY_ROOT,
    ProofError,
    aligned_nodes,
    append_leaf,
    canonical_json,
    canonical_json_text,
    consistency_ranges,
    frontier_root,
    inclusion_ranges,
    leaf_hash,
    resolve,
    root_of,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex
LEAVES = [
    h(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]
INCLUSION = [  # (1-based leaf, tree size, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (2, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
CONSISTENCY = [  # (size1, size2, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip


def _stored_nodes(count: int) -> dict[tuple[int, int], bytes]:
    """The complete subtrees as the store keeps them, built by appending leaf by leaf."""
    frontier: list[bytes] = []
    nodes: dict[tuple[int, int], bytes] = {}
    for i, data in enumerate(LEAVES[:count]):
        for level, idx, digest in append_leaf(frontier, i, leaf_hash(data)):
            nodes[(level, idx)] = digest
    return nodes


def _fetch(nodes: dict[tuple[int, int], bytes]):  # type: ignore[no-untyped-def]
    return lambda wanted: {n: nodes[n] for n in wanted if n in nodes}


@pytest.mark.parametrize("size", range(9))
def test_roots_match_the_rfc6962_vectors_by_definition_frontier_and_stored_nodes(size: int) -> None:
    hashes = [leaf_hash(x) for x in LEAVES[:size]]
    assert root_of(hashes) == ROOTS[size]
    frontier: list[bytes] = []
    for i, digest in enumerate(hashes):
        append_leaf(frontier, i, digest)
    assert frontier_root(frontier) == ROOTS[size]
    if size:
        assert resolve([(0, size)], _fetch(_stored_nodes(size))) == [ROOTS[size]]
    else:
        assert ROOTS[0] == EMPTY_ROOT


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_inclusion_proofs_equal_the_vectors_and_verify(leaf: int, size: int, proof: list[str]) -> None:
    expected = [h(x) for x in proof]
    got = resolve(inclusion_ranges(leaf - 1, size), _fetch(_stored_nodes(size)))
    assert got == expected
    verify_inclusion(leaf_hash(LEAVES[leaf - 1]), leaf - 1, size, expected, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proofs_equal_the_vectors_and_verify(old: int, new: int, proof: list[str]) -> None:
    expected = [h(x) for x in proof]
    got = resolve(consistency_ranges(old, new), _fetch(_stored_nodes(new))) if old != new else []
    assert got == expected
    verify_consistency(old, new, ROOTS[old], ROOTS[new], expected)


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION[1:])
def test_a_corrupted_inclusion_proof_is_refused(leaf: int, size: int, proof: list[str]) -> None:
    good = [h(x) for x in proof]
    digest = leaf_hash(LEAVES[leaf - 1])
    flipped = [bytes([good[0][0] ^ 8]) + good[0][1:], *good[1:]]
    for args in (
        (digest, leaf, size, good, ROOTS[size]),  # wrong index
        (digest, leaf - 1, size * 2, good, ROOTS[size]),  # wrong size
        (leaf_hash(b"WrongLeaf"), leaf - 1, size, good, ROOTS[size]),
        (digest, leaf - 1, size, good, EMPTY_ROOT),
        (digest, leaf - 1, size, [*good, ROOTS[size]], ROOTS[size]),  # trailing garbage
        (digest, leaf - 1, size, good[:-1], ROOTS[size]),  # truncated
        (digest, leaf - 1, size, flipped, ROOTS[size]),
    ):
        with pytest.raises(ProofError):
            verify_inclusion(*args)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY[1:])
def test_a_corrupted_consistency_proof_is_refused(old: int, new: int, proof: list[str]) -> None:
    good = [h(x) for x in proof]
    flipped = [bytes([good[-1][0] ^ 16]) + good[-1][1:], *good[:-1]][::-1]
    for args in (
        (old, new, ROOTS[new], ROOTS[old], good),  # swapped roots
        (old, new, ROOTS[old], ROOTS[new], []),
        (old, new, ROOTS[old], ROOTS[new], [*good, ROOTS[old]]),
        (old, new, ROOTS[old], ROOTS[new], good[:-1]),
        (old, new, ROOTS[old], ROOTS[new], flipped),
        (old, new * 2, ROOTS[old], ROOTS[new], good),
    ):
        with pytest.raises(ProofError):
            verify_consistency(*args)


def test_every_proof_of_a_tree_of_up_to_70_leaves_verifies() -> None:
    """Proofs for every (leaf, size) and (old, new) pair, from stored nodes, check out."""
    data = [i.to_bytes(4, "big") for i in range(70)]
    hashes = [leaf_hash(d) for d in data]
    frontier: list[bytes] = []
    nodes: dict[tuple[int, int], bytes] = {}
    for i, digest in enumerate(hashes):
        for level, idx, node in append_leaf(frontier, i, digest):
            nodes[(level, idx)] = node
    roots = [root_of(hashes[:n]) for n in range(71)]
    for size in range(1, 71):
        for index in range(size):
            proof = resolve(inclusion_ranges(index, size), _fetch(nodes))
            verify_inclusion(hashes[index], index, size, proof, roots[size])
        for old in range(1, size):
            proof = resolve(consistency_ranges(old, size), _fetch(nodes))
            verify_consistency(old, size, roots[old], roots[size], proof)


def test_aligned_nodes_cover_a_range_with_log_n_stored_subtrees() -> None:
    assert aligned_nodes(0, 8) == [(3, 0)]
    assert aligned_nodes(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert len(aligned_nodes(0, 1_000_000)) == bin(1_000_000).count("1")


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(_json_values)
def test_the_fast_canonical_json_equals_the_rfc8785_package(value: object) -> None:
    """The standard library's encoder is used only where it writes what RFC 8785 writes."""
    try:
        expected = rfc8785.dumps(value)
    except Exception as exc:  # out of I-JSON's range, a lone surrogate: the same refusal
        with pytest.raises(type(exc)):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


def test_canonical_json_sorts_keys_by_utf16_code_units_as_rfc8785_says() -> None:
    # U+1F600 (a surrogate pair, D83D...) sorts before U+FB33 in UTF-16, after it by code point.
    value = {"\ufb33": 1, "\U0001f600": 2, "a": 3.5e-7}
    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json(value).decode().index("\U0001f600") < canonical_json(value).decode().index("\ufb33")


@settings(max_examples=500, deadline=None)
@given(_json_values)
def test_canonical_json_of_a_json_text_equals_the_rfc8785_package(value: object) -> None:
    """What the append path hashes (a row's wire JSON text) is canonicalised as RFC 8785 says."""
    import json

    try:
        expected = rfc8785.dumps(value)
    except Exception as exc:
        with pytest.raises(type(exc)):
            canonical_json_text(json.dumps(value, ensure_ascii=False))
        return
    assert canonical_json_text(json.dumps(value, ensure_ascii=False)) == expected
    assert canonical_json_text(json.dumps(value, ensure_ascii=True)) == expected


@pytest.mark.parametrize(
    "text",
    [
        '{"b":1,"a":{"d":[true,null,"x"],"c":-0}}',  # tier 1: sorted by msgspec
        '{"k":"' + "".join(f"\\u{i:04x}" for i in range(32)) + '\\"\\\\/\u007f\u2028é"}',  # escapes
        '{"n":1000000000000000,"m":9007199254740991,"l":-9007199254740991}',  # 16 digits: tier 2
        '{"f":1.5,"e":1e21,"g":-0.0,"h":5e-324}',  # floats: ECMAScript's form, from rfc8785
        '{"\ufb33":1,"\U0001f600":2,"v":"\U0001f600"}',  # beyond the BMP: UTF-16 key order
        '{"\\ud83d\\ude00":1,"\\ufb33":2}',  # the same keys as ASCII escapes
        '  {"a" : 1 , "a" : 2}\n',  # whitespace and a repeated key (the last wins, as in json)
    ],
)
def test_each_tier_of_canonical_json_text_writes_what_rfc8785_writes(text: str) -> None:
    import json

    expected = rfc8785.dumps(json.loads(text))
    assert canonical_json_text(text) == expected
    assert canonical_json_text(text.encode("utf-8")) == expected


def test_text_that_is_not_json_is_a_value_error_from_every_tier() -> None:
    bad = ('{"a":', '{"a":1.5', '"\\ud800"', '{"a":"\x01"}', b'{"a":"\xff"}', '{"big":9007199254740993}')
    for text in bad:
        with pytest.raises(ValueError):
            canonical_json_text(text)
