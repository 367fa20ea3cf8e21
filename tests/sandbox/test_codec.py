"""Tests for the value codec between the program's process and the harness."""

from __future__ import annotations

import collections
import enum
import json
import math

import pytest

from bgpo_lightning.sandbox.inside import codec


def _refuse(value):
    raise codec.CodecError(f"no {type(value).__name__}")


def _no_ref(name):
    raise codec.CodecError(name)


def roundtrip(value):
    wire = json.loads(json.dumps(codec.encode(value, _refuse)))
    return codec.decode(wire, _no_ref, _no_ref)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -7,
        2**63,
        -(2**200) + 1,
        1.5,
        -0.0,
        float("inf"),
        "text \u2603 \ud800",
        b"\x00\xff",
        bytearray(b"ab"),
        3 + 4j,
        [1, [2, (3, 4)], {"a": {1, 2}}],
        (),
        (1,),
        {(1, 2): [3], frozenset({1}): None, 1.5: "x"},
        set(),
        frozenset({(1, 2), "a"}),
    ],
)
def test_plain_values_round_trip_with_exact_types(value) -> None:
    back = roundtrip(value)
    assert back == value and type(back) is type(value)


def test_huge_int_round_trips_as_hex() -> None:
    value = 10**5000  # beyond int's 4300-digit string conversion limit
    assert roundtrip(value) == value


def test_nan_round_trips() -> None:
    assert math.isnan(roundtrip(float("nan")))


def test_bool_stays_distinct_from_int() -> None:
    back = roundtrip([True, 1, False, 0])
    assert [type(x) for x in back] == [bool, int, bool, int]


class Color(enum.IntEnum):
    RED = 1


class LyingInt(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class LyingStr(str):
    def __str__(self):
        return "lie"

    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


class LyingList(list):
    def __iter__(self):
        return iter([42])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (collections.Counter("aab"), {"a": 2, "b": 1}),
        (collections.defaultdict(list, {1: [2]}), {1: [2]}),
        (collections.OrderedDict([(2, 3)]), {2: 3}),
        (collections.namedtuple("P", "x y")(1, 2), (1, 2)),
        (Color.RED, 1),
        (LyingInt(5), 5),
        (LyingStr("abc"), "abc"),
        (LyingList([1, 2]), [1, 2]),
    ],
)
def test_subclasses_arrive_as_their_base_data(value, expected) -> None:
    back = roundtrip(value)
    assert back == expected and type(back) is type(expected)


def test_other_objects_go_to_the_callback() -> None:
    seen = []

    def keep(obj):
        seen.append(obj)
        return {"ref": f"#{len(seen) - 1}"}

    marker = object()
    encoded = codec.encode([marker, len], keep)
    assert encoded == [{"ref": "#0"}, {"ref": "#1"}] and seen == [marker, len]
    decoded = codec.decode(encoded, lambda name: ("ref", name), _no_ref)
    assert decoded == [("ref", "#0"), ("ref", "#1")]


def test_cycles_and_deep_nesting_are_refused() -> None:
    loop: list = []
    loop.append(loop)
    with pytest.raises(codec.CodecError, match="nested"):
        codec.encode(loop, _refuse)
    deep = "x"
    for _ in range(codec.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(codec.CodecError):
        codec.decode(deep, _no_ref, _no_ref)


@pytest.mark.parametrize(
    "wire",
    [
        {"tuple": 1},
        {"set": [[1]]},  # unhashable member
        {"dict": [[1]]},
        {"dict": [[[1], 2]]},  # unhashable key
        {"bytes": "zz"},
        {"int": 5},
        {"complex": ["a", 1]},
        {"eval": "1"},
        {"tuple": [], "set": []},
    ],
)
def test_malformed_encodings_raise_codec_error(wire) -> None:
    with pytest.raises(codec.CodecError):
        codec.decode(wire, _no_ref, _no_ref)


def test_builtin_name() -> None:
    assert codec.builtin_name(int) == "int" and codec.builtin_name(len) == "len"
    assert codec.builtin_name(lambda: 0) is None and codec.builtin_name(3) is None


class Leaf:
    def __init__(self, value, child=None):
        self.value, self.child = value, child


def _leaf_fields(value):
    return ("Leaf", dict(vars(value))) if isinstance(value, Leaf) else None


def test_objects_go_as_copies_only_where_both_sides_agree() -> None:
    tree = Leaf(1, Leaf((2, "x")))
    encoded = json.loads(json.dumps(codec.encode([tree], _refuse, fields=_leaf_fields)))
    assert encoded == [{"object": ["Leaf", [["value", 1], ["child", _leaf_wire()]]]}]
    built = codec.decode(encoded, _no_ref, _no_ref, instance=lambda name, attrs: (name, attrs))
    assert built == [("Leaf", {"value": 1, "child": ("Leaf", {"value": (2, "x"), "child": None})})]
    with pytest.raises(codec.CodecError, match="object"):  # the harness accepts none back
        codec.decode(encoded, _no_ref, _no_ref)
    with pytest.raises(codec.CodecError, match="Leaf"):  # without fields: the callback
        codec.encode(tree, _refuse)


def _leaf_wire():
    return {"object": ["Leaf", [["value", {"tuple": [2, "x"]}], ["child", None]]]}


def test_object_copies_are_bounded_and_checked() -> None:
    loop = Leaf(0)
    loop.child = loop
    with pytest.raises(codec.CodecError, match="nested"):
        codec.encode(loop, _refuse, fields=_leaf_fields)
    with pytest.raises(codec.CodecError, match="strings"):
        codec.encode(Leaf(0), _refuse, fields=lambda v: ("Leaf", {1: 2}))
    for wire in ({"object": "Leaf"}, {"object": ["Leaf", [[1, 2]]]}, {"object": [3, []]}):
        with pytest.raises(codec.CodecError):
            codec.decode(wire, _no_ref, _no_ref, instance=lambda name, attrs: None)
