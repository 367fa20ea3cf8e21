"""The worker: runs the untrusted program, then answers the harness's calls into it.

Nothing the worker says is trusted. It only ever hands the harness plain data (see
:mod:`.codec`) or references to its own objects, and the harness, not the worker, decides
whether the tests passed. The program can rewrite anything in this process, this module
included; the worst it can do is answer wrongly, stop answering, or die.

Messages to the harness (one JSON line each, see :mod:`.wire`):

* ``{"kind": "hello", "layers": {...}}``: sent before any program code runs, so it truthfully
  reports the worker's own isolation layers (seccomp);
* ``{"kind": "ready", "names": [...]}`` once the program ran to its end, with the names it
  defined, or ``{"kind": "program_error", "error": {...}}`` if it raised (``SystemExit``
  included);
* per request ``{"kind": "call", "id", "target", "args", "kwargs"}``, one of
  ``{"kind": "return", "id", "value"}`` or ``{"kind": "raise", "id", "error"}``. Arguments
  are copies; one of the tests' own objects arrives as an instance of the program's class of
  that name (``__init__`` not run) or as a plain attribute holder.

The program runs as module ``__sandbox__`` (so ``if __name__ == "__main__":`` blocks do not
run, as with HumanEval's reference executor), with standard input at ``/dev/null``.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import sys
import types
from typing import Any, NoReturn

from . import codec, wire

MODULE_NAME = "__sandbox__"
MAX_REQUEST_BYTES = 64 << 20
_MAX_NAMES = 10_000
_MAX_MESSAGE_CHARS = 500


def describe_error(err: BaseException) -> dict[str, str]:
    """Type name and message of an exception, never raising (``__str__`` may be hostile)."""
    try:
        text = str(err)[:_MAX_MESSAGE_CHARS]
    except BaseException:  # the program's exception classes are untrusted
        text = "<unprintable>"
    return {"type": type(err).__name__, "message": text}


def serve(program: str, requests_fd: int, responses_fd: int, layers: dict[str, str]) -> NoReturn:
    """Runs ``program`` and answers calls until the harness closes its end.

    Args:
        program: The untrusted source.
        requests_fd: Read end of the harness's request pipe.
        responses_fd: Write end of the response pipe.
        layers: Isolation layers set up by this process, for the hello message.
    """
    send = wire.send
    reader = wire.MessageReader(requests_fd, MAX_REQUEST_BYTES)
    send(responses_fd, {"kind": "hello", "layers": layers})
    module = types.ModuleType(MODULE_NAME)
    sys.modules[MODULE_NAME] = module
    namespace = module.__dict__
    try:
        exec(compile(program, "<program>", "exec"), namespace)
    except BaseException as err:  # SystemExit and KeyboardInterrupt fail too
        _flush()
        send(responses_fd, {"kind": "program_error", "error": describe_error(err)})
        os._exit(0)
    _flush()
    names = [k for k in list(namespace)[:_MAX_NAMES] if type(k) is str]
    send(responses_fd, {"kind": "ready", "names": names})
    handles: dict[str, Any] = {}
    while True:
        request = reader.receive()
        if request is None:
            _flush()
            os._exit(0)
        send(responses_fd, _answer(request, namespace, handles))
        _flush()


def _answer(request: Any, namespace: dict[str, Any], handles: dict[str, Any]) -> dict[str, Any]:
    call_id = request.get("id") if type(request) is dict else None

    def keep(obj: Any) -> dict[str, str]:
        name = f"#{len(handles)}"
        handles[name] = obj
        return {"ref": name}

    def lookup(name: str) -> Any:
        if name in handles:
            return handles[name]
        if name in namespace:
            return namespace[name]
        raise codec.CodecError(f"the program has no {name!r}")

    def instance(name: str, attrs: dict[str, Any]) -> Any:
        return _rebuild(namespace.get(name), attrs)

    try:
        target = lookup(request["target"])
        args = codec.decode(request["args"], lookup, _builtin, instance=instance)
        kwargs = codec.decode(request["kwargs"], lookup, _builtin, instance=instance)
        result = target(*args, **kwargs)
        return {"kind": "return", "id": call_id, "value": codec.encode(result, keep)}
    except BaseException as err:  # reported to the harness as the call's outcome
        return {"kind": "raise", "id": call_id, "error": describe_error(err)}


def _builtin(name: str) -> Any:
    return getattr(builtins, name)


def _rebuild(kind: Any, attrs: dict[str, Any]) -> Any:
    """The program's copy of one of the tests' objects (e.g. a tree ``Node``).

    An instance of the program's class of the same name when it has one (so its methods
    work), its ``__init__`` not run; else a plain attribute holder.
    """
    if isinstance(kind, type):
        try:
            obj = object.__new__(kind)
            for key, value in attrs.items():
                object.__setattr__(obj, key, value)
            return obj
        except Exception:  # a built-in base, __slots__ without these names, ...
            pass
    return types.SimpleNamespace(**attrs)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):  # the program may have replaced them
            stream.flush()
