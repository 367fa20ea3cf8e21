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
