"""Fixtures shared across test folders."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Many tiny ops: on a shared 2-core machine a second thread only adds contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def compiles(monkeypatch) -> list:
    """Stands in for torch.compile (no compiler in the loop): records what it wraps and wraps
    it in a function that counts its calls."""
    made = []

    def fake_compile(fn, **kwargs):
        def wrapper(*args, **kw):
            wrapper.calls += 1
            return fn(*args, **kw)

        wrapper.calls = 0
        made.append(wrapper)
        return wrapper

    monkeypatch.setattr(torch, "compile", fake_compile)
    return made


@pytest.fixture
def traced_graphs(monkeypatch) -> list:
    """torch.compile through dynamo with no compiler after it: every graph dynamo hands over
    is recorded and run as traced, so the list's length counts the compiles."""
    graphs = []

    def recording_backend(graph: torch.fx.GraphModule, example_inputs: list):
        graphs.append(graph)
        return graph.forward

    real_compile = torch.compile
    monkeypatch.setattr(
        torch, "compile", lambda fn, **kw: real_compile(fn, backend=recording_backend)
    )
    return graphs
