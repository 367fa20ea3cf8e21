"""The harness: runs the trusted tests against the worker and alone decides the verdict.

Why a pass cannot be faked: the program never shares a process with the tests or with the
verdict. The harness is a separate process, not dumpable, with its own user id when the
sandbox runs as root (in a user namespace the worker instead has no capabilities and a
seccomp filter letting it signal only itself), so the worker can neither read its memory,
ptrace it, open its descriptors nor kill it; it receives the tests only after the worker
was forked, and only it holds the report pipe the host reads the verdict from. It writes
``passed`` only after the test code ran to its end. So:

* printing "passed", exit codes, ``sys.exit(0)`` and ``os._exit(0)`` only end the worker,
  which fails the pending call or the start-up;
* overriding builtins, ``AssertionError``, ``print``, ``sys.exit`` or the test's helper names
  changes the worker's interpreter, not the harness's: test code runs with the harness's own
  builtins (the program's global names are bound only when the tests use them and they are
  not built-ins);
* the program's functions are called through :class:`Remote` proxies whose results are plain
  data rebuilt as exact built-in types (:mod:`.codec`): an object whose ``__eq__`` always says
  ``True`` arrives as an opaque :class:`Remote`, equal only to itself and with no truth
  value; an ``int`` subclass arrives as its ``int``;
* the program cannot read the expected values: they live only in this process;
* the trusted setup code (HumanEval's helpers such as ``encode_cyclic`` or ``poly``, MBPP's
  ``test_setup_code`` building trees) runs here too, before the tests, and every name the
  setup or the tests bind means that trusted definition (see :mod:`.scope`): a program that
  redefines, wraps or monkeypatches its own copy of a helper (or ``math``, or a built-in the
  helper uses) changes nothing the tests compute;
* arguments go to the program as copies (plain data; instances of classes the trusted code
  defined as their class name and attributes), so it cannot mutate the tests' objects;
* exceptions raised in the program come back as exceptions (built-in types re-raised by
  name), except that ``StopIteration`` and friends become :class:`ProgramError`, so they
  cannot silently end a loop such as ``all(map(...))`` in the tests.

Names the setup and tests use but never bind (the entry point, ``candidate``'s target,
MBPP's function under test) resolve to proxies of the worker's globals of that name; a name
of a built-in (``len``, ``sorted``, ``set``, ...) keeps meaning the built-in, so the program
cannot redefine the tools the tests check with, unless the caller exposes it as the
function under test.

Differences from running program and tests in one interpreter (none of HumanEval's or
MBPP's reference solutions is affected): arguments and results cross as data, so a test
that inspects an argument after the program mutated it in place sees its own unchanged
copy, an object the trusted code built reaches the program as a copy of its attributes
(``__init__`` not run), and an object of the program's own type can only be passed back to
the program.
"""

from __future__ import annotations

import builtins
import traceback
from typing import Any

from . import codec, scope, wire

MAX_REPLY_BYTES = 16 << 20
TESTS_MODULE = "__tests__"  # ``__name__`` of the trusted code: the classes it defines say so
_HIDDEN = (StopIteration, StopAsyncIteration)


class ProgramError(Exception):
    """The program raised an exception that is not re-raised as a built-in type."""


class WorkerGone(Exception):
    """The worker closed its pipe: the program exited, crashed or was killed."""


class ProtocolError(Exception):
    """The worker answered something other than the expected message."""


class Remote:
    """An object living in the worker: it can be called, or passed back to the worker.

    It has no truth value, is equal only to itself, and supports nothing else, so the program
    cannot make comparisons in the tests come out its way.
    """

    __slots__ = ("_channel", "_ref")

    def __init__(self, channel: Channel, ref: str) -> None:
        self._channel = channel
        self._ref = ref

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.call(self._ref, args, kwargs)

    def __bool__(self) -> bool:
        raise TypeError("a value of the program's own type has no truth value in the tests")

    def __repr__(self) -> str:
        return f"<program object {self._ref}>"


class Channel:
    """The request/response pipes to the worker."""

    def __init__(self, requests_fd: int, responses_fd: int) -> None:
        self._out = requests_fd
        self._reader = wire.MessageReader(responses_fd, MAX_REPLY_BYTES)
        self._next_id = 0

    def receive(self) -> dict[str, Any]:
        """The worker's next message; raises :class:`WorkerGone` at end of stream."""
        try:
            message = self._reader.receive()
        except wire.WireError as err:
            raise ProtocolError(str(err)) from None
        if message is None:
            raise WorkerGone("the program's process ended")
        if type(message) is not dict:
            raise ProtocolError("message is not an object")
        return message

    def call(self, ref: str, args: tuple, kwargs: dict[str, Any]) -> Any:
        """Calls the worker's object ``ref``; returns its result as plain data or proxies."""
        self._next_id += 1
        request = {
            "kind": "call",
            "id": self._next_id,
            "target": ref,
            "args": codec.encode(list(args), _outgoing, fields=_copied_fields),
            "kwargs": codec.encode(dict(kwargs), _outgoing, fields=_copied_fields),
        }
        try:
            wire.send(self._out, request)
        except BrokenPipeError:
            raise WorkerGone("the program's process ended") from None
        reply = self.receive()
        if reply.get("id") != self._next_id:
            raise ProtocolError("reply does not match the call")
        if reply.get("kind") == "return":
            try:
                return codec.decode(reply.get("value"), self._incoming, _builtin_type)
            except (codec.CodecError, RecursionError) as err:
                raise ProtocolError(f"bad return value: {err}") from None
        if reply.get("kind") == "raise":
            raise _exception(reply.get("error"))
        raise ProtocolError("unexpected reply kind")

    def _incoming(self, ref: str) -> Remote:
        return Remote(self, ref)


def _outgoing(value: Any) -> Any:
    if isinstance(value, Remote):
        return {"ref": value._ref}
    name = codec.builtin_name(value)
    if name is not None:
        return {"builtin": name}
    raise codec.CodecError(f"cannot pass a {type(value).__name__} to the program")


def _copied_fields(value: Any) -> tuple[str, dict[str, Any]] | None:
    """Class name and attributes of an instance of a class the trusted code defined.

    Such objects (MBPP's tree nodes) go to the program as copies: it works on its own
    instance and the tests' object stays as the setup built it.
    """
    kind = type(value)
    attrs = getattr(value, "__dict__", None)
    if kind.__module__ != TESTS_MODULE or type(attrs) is not dict:
        return None
    return kind.__name__, dict(attrs)


def _builtin_type(name: str) -> type:
    value = getattr(builtins, name, None)
    if not isinstance(value, type):
        raise codec.CodecError(f"{name!r} is not a built-in type")
    return value


def _exception(error: Any) -> Exception:
    """The exception the tests see for an exception raised in the program."""
    if type(error) is not dict:
        return ProtocolError("malformed error")
    name, message = str(error.get("type")), str(error.get("message"))
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception) and not issubclass(kind, _HIDDEN):
        try:
            return kind(f"{message} (raised in the program)")
        except Exception:  # e.g. UnicodeDecodeError wants five arguments
            pass
    return ProgramError(f"{name}: {message}")


def _failure(stage: str, err: BaseException, filename: str = "<tests>") -> dict[str, Any]:
    line = None
    for frame, lineno in traceback.walk_tb(err.__traceback__):
        if frame.f_code.co_filename == filename:
            line = lineno
    try:
        message = str(err)[:500]
    except Exception:
        message = "<unprintable>"
    return {"stage": stage, "type": type(err).__name__, "message": message, "line": line}


def run(
    tests: str, expose: list[str], requests_fd: int, responses_fd: int, setup: str = ""
) -> dict[str, Any]:
    """Runs ``setup`` then ``tests`` against the worker.

    Args:
        tests: Trusted Python test code; it passes if it runs to its end without raising.
        expose: Names of the program to bind even where they shadow a built-in: the function
            under test when the task itself names it like one (MBPP's ``sum``).
        requests_fd: Write end of the request pipe.
        responses_fd: Read end of the response pipe.
        setup: Trusted code run first, in the same namespace (helpers the tests call, objects
            they pass to the program); failing in it fails the run like a failing test.

    Returns:
        The verdict message: ``{"kind": "verdict", "passed": bool, "failure": ... | None,
        "worker_layers": {...}, "calls": int}``.
    """
    channel = Channel(requests_fd, responses_fd)
    verdict: dict[str, Any] = {"kind": "verdict", "passed": False, "failure": None}
    try:
        hello = channel.receive()
        if hello.get("kind") != "hello":
            raise ProtocolError("no hello")
        verdict["worker_layers"] = hello.get("layers") if type(hello.get("layers")) is dict else {}
        start = channel.receive()
    except (WorkerGone, ProtocolError) as err:
        verdict["failure"] = _failure("start", err)
        return verdict
    if start.get("kind") == "program_error":
        error = start.get("error") if type(start.get("error")) is dict else {}
        verdict["failure"] = {
            "stage": "program",
            "type": str(error.get("type")),
            "message": str(error.get("message")),
            "line": None,
        }
        return verdict
    names = start.get("names")
    if start.get("kind") != "ready" or type(names) is not list:
        verdict["failure"] = _failure("start", ProtocolError("no ready message"))
        return verdict
    stages = {"setup": (setup, "<setup>"), "tests": (tests, "<tests>")}
    codes, trusted, used = {}, set(), set()
    for stage, (source, filename) in stages.items():
        try:
            codes[stage] = compile(source, filename, "exec")
            trusted |= scope.bound_names(source, filename)
        except SyntaxError as err:
            verdict["failure"] = _failure("compile", err, filename)
            verdict["failure"]["line"] = err.lineno
            return verdict
        used |= scope.global_names(codes[stage])
    namespace: dict[str, Any] = {"__name__": TESTS_MODULE, "__builtins__": builtins}
    for name in (used - trusted) & {n for n in names if type(n) is str}:  # never a trusted name
        if not hasattr(builtins, name) or name in expose:
            namespace[name] = Remote(channel, name)
    for stage, code in codes.items():
        try:
            exec(code, namespace)
        except BaseException as err:  # anything the tests raise, KeyboardInterrupt included, fails
            verdict["failure"] = _failure(stage, err, stages[stage][1])
            return verdict
    verdict["passed"] = True
    return verdict
