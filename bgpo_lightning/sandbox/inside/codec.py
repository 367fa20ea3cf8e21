"""Plain data across the worker/harness boundary, as JSON with tags.

Only data crosses from the program's process to the harness: ``None``, ``bool``, ``int``,
``float``, ``complex``, ``str``, ``bytes``, ``bytearray``, ``list``, ``tuple``, ``dict``,
``set`` and ``frozenset``, nested at most :data:`MAX_DEPTH` deep. The decoder builds only
those exact built-in types, so no value the program returns can carry its own ``__eq__``,
``__bool__`` or ``__hash__`` into the harness. Subclasses of them (``Counter``,
``namedtuple``, ``IntEnum``, ...) are encoded as their base type's data, read through the
base type's own methods, so an overriding method plays no part either. Any other object is
left to the caller's ``other`` function: the worker keeps it and sends a reference, the
harness sends references and built-in types.

One more form goes only from the harness to the worker: an instance of a class the trusted
test code defined (MBPP's tree ``Node``) is sent as a copy, its class name and attributes
(``fields`` on encoding), and the worker rebuilds it (``instance`` on decoding). The harness
decodes without ``instance``, so the program can never send such an object back.

JSON has lists, strings, integers and floats; everything else is a one-key object whose key
is the tag: ``{"tuple": [...]}``, ``{"dict": [[k, v], ...]}``, ``{"bytes": "hex"}``,
``{"int": "-hex"}`` (outside 64 bits: hex keeps parsing linear and free of the 4300-digit
limit), ``{"ref": "name"}``, ``{"builtin": "name"}``, ``{"object": ["Class", [[attr, v], ...]]}``.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

MAX_DEPTH = 100
_INT_BITS = 63


class CodecError(ValueError):
    """A value cannot be encoded, or an encoded value is malformed."""


Fields = Callable[[Any], tuple[str, dict[str, Any]] | None]


def encode(
    value: Any, other: Callable[[Any], Any], depth: int = 0, fields: Fields | None = None
) -> Any:
    """The JSON-ready encoding of ``value``.

    Args:
        value: Any object.
        other: Encodes an object that is not plain data, e.g. into ``{"ref": ...}``; may
            raise :class:`CodecError`.
        depth: Nesting level of ``value`` (internal).
        fields: For an object that is not plain data: its class name and attributes, to send
            as a copy, or ``None`` to leave it to ``other``.

    Raises:
        CodecError: If nesting exceeds :data:`MAX_DEPTH` (a cycle, too), or ``other`` raises.
    """
    if depth > MAX_DEPTH:
        raise CodecError(f"value nested more than {MAX_DEPTH} levels deep")
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is int:
        return value if value.bit_length() <= _INT_BITS else {"int": format(value, "x")}
    if kind is float or kind is str:
        return value
    deeper = depth + 1
    if kind is list:
        return [encode(x, other, deeper, fields) for x in value]
    if kind is tuple:
        return {"tuple": [encode(x, other, deeper, fields) for x in value]}
    if kind is dict:
        return {
            "dict": [
                [encode(k, other, deeper, fields), encode(v, other, deeper, fields)]
                for k, v in value.items()
            ]
        }
    if kind is set or kind is frozenset:
        return {kind.__name__: [encode(x, other, deeper, fields) for x in value]}
    if kind is bytes or kind is bytearray:
        return {kind.__name__: value.hex()}
    if kind is complex:
        return {"complex": [value.real, value.imag]}
    base = _plain_base(value)
    if base is not None:
        return encode(base, other, depth, fields)
    copied = fields(value) if fields is not None else None
    if copied is not None:
        name, attrs = copied
        if any(type(key) is not str for key in attrs):
            raise CodecError("attribute names must be strings")
        pairs = [[key, encode(attr, other, deeper, fields)] for key, attr in attrs.items()]
        return {"object": [name, pairs]}
    return other(value)


def _plain_base(value: Any) -> Any:
    """The base-type data of a subclass of a plain type, read without its overrides."""
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, tuple):
        return tuple(tuple.__iter__(value))
    if isinstance(value, list):
        return list(list.__iter__(value))
    if isinstance(value, dict):
        return dict(dict.items(value))
    if isinstance(value, frozenset):
        return frozenset(frozenset.__iter__(value))
    if isinstance(value, set):
        return set(set.__iter__(value))
    if isinstance(value, (bytes, bytearray)):
        return bytes(memoryview(value))
    if isinstance(value, complex):
        return complex.__complex__(value)
    return None


Instance = Callable[[str, dict[str, Any]], Any]


def decode(
    obj: Any,
    ref: Callable[[str], Any],
    builtin: Callable[[str], Any],
    depth: int = 0,
    instance: Instance | None = None,
) -> Any:
    """Rebuilds a value from :func:`encode`'s output, as exact built-in types only.

    Args:
        obj: Decoded JSON.
        ref: Turns a ``{"ref": name}`` into an object; may raise :class:`CodecError`.
        builtin: Turns a ``{"builtin": name}`` into an object; may raise :class:`CodecError`.
        depth: Nesting level (internal).
        instance: Rebuilds an ``{"object": ...}`` from its class name and decoded
            attributes; ``None`` refuses that form.

    Raises:
        CodecError: On anything malformed: unknown tags, unhashable set members or keys,
            bad hex, nesting beyond :data:`MAX_DEPTH`.
    """
    if depth > MAX_DEPTH + 1:
        raise CodecError("encoded value nested too deeply")
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    deeper = depth + 1
    if type(obj) is list:
        return [decode(x, ref, builtin, deeper, instance) for x in obj]
    if type(obj) is not dict or len(obj) != 1:
        raise CodecError(f"malformed encoded value of type {type(obj).__name__}")
    ((tag, body),) = obj.items()
    try:
        if tag == "tuple":
            return tuple(decode(x, ref, builtin, deeper, instance) for x in _list(body))
        if tag == "set":
            return {decode(x, ref, builtin, deeper, instance) for x in _list(body)}
        if tag == "frozenset":
            return frozenset(decode(x, ref, builtin, deeper, instance) for x in _list(body))
        if tag == "dict":
            return {
                decode(k, ref, builtin, deeper, instance): decode(v, ref, builtin, deeper, instance)
                for k, v in (_pair(p) for p in _list(body))
            }
        if tag == "int":
            return int(_str(body), 16)
        if tag == "bytes":
            return bytes.fromhex(_str(body))
        if tag == "bytearray":
            return bytearray.fromhex(_str(body))
        if tag == "complex":
            real, imag = _pair(body)
            return complex(_number(real), _number(imag))
        if tag == "ref":
            return ref(_str(body))
        if tag == "builtin":
            return builtin(_str(body))
        if tag == "object" and instance is not None:
            name, pairs = _pair(body)
            attrs = {
                _str(key): decode(attr, ref, builtin, deeper, instance)
                for key, attr in (_pair(p) for p in _list(pairs))
            }
            return instance(_str(name), attrs)
    except (TypeError, ValueError) as err:  # unhashable members, bad hex, ...
        if isinstance(err, CodecError):
            raise
        raise CodecError(f"malformed {tag!r} value: {err}") from None
    raise CodecError(f"unknown tag {tag!r}")


def builtin_name(value: Any) -> str | None:
    """The name under which ``value`` is a built-in (``int``, ``len``, ...), else ``None``."""
    name = getattr(value, "__name__", None)
    if isinstance(name, str) and getattr(builtins, name, None) is value:
        return name
    return None


def _list(body: Any) -> list:
    if type(body) is not list:
        raise CodecError("expected a list")
    return body


def _pair(body: Any) -> list:
    if type(body) is not list or len(body) != 2:
        raise CodecError("expected a pair")
    return body


def _str(body: Any) -> str:
    if type(body) is not str:
        raise CodecError("expected a string")
    return body


def _number(body: Any) -> float:
    if type(body) not in (int, float):
        raise CodecError("expected a number")
    return float(body)
