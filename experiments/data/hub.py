"""Loading a source through the ``datasets`` library, with one-line reasons when it fails."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Iterator

from experiments.data.catalog import Source
from experiments.data.rows import Row

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_TRUE = {"1", "ON", "YES", "TRUE"}
# The Hub client, requests, httpx and aiohttp each name their own connection errors; these
# name fragments cover them without importing any of them.
_UNREACHABLE_NAMES = ("Connect", "Timeout", "Offline", "LocalEntryNotFound")
# Loggers set to ERROR unless their own verbosity variable says otherwise.
_LIBRARY_LOGGERS = (("datasets", "DATASETS_VERBOSITY"), ("huggingface_hub", "HF_HUB_VERBOSITY"))


class FetchError(RuntimeError):
    """A source could not be loaded; the message is one line naming the dataset."""


def load_rows(source: Source, dataset: str) -> Iterable[Row]:
    """The rows of ``source``, as ``datasets.load_dataset`` returns them.

    Raises:
        FetchError: When ``datasets`` is not installed, the Hub or GitHub is unreachable
            (offline, connection error, ``HF_HUB_OFFLINE`` without a cached copy), or the
            load fails otherwise.
    """
    try:
        import datasets
    except ImportError:
        raise FetchError(
            f"cannot get {dataset} ({source}): the `datasets` package is not installed "
            "(pip install datasets)"
        ) from None
    _quiet_libraries()
    kwargs = {"split": source.split}
    if source.data_files:
        kwargs["data_files"] = source.data_files
    if source.text_columns:
        # Without this, pandas reads "0140432014020000" as a number and drops the leading 0.
        kwargs["features"] = datasets.Features(
            {column: datasets.Value("string") for column in source.text_columns}
        )
    try:
        return datasets.load_dataset(source.path, source.config, **kwargs)
    except Exception as err:  # The Hub, the network and the builders raise many types.
        raise FetchError(_explain(err, source, dataset)) from None


def _quiet_libraries() -> None:
    # Their retry and cache warnings (a dozen lines when offline) would bury our one-line
    # error; progress bars are not logging and still show.
    for name, variable in _LIBRARY_LOGGERS:
        if variable not in os.environ:
            logging.getLogger(name).setLevel(logging.ERROR)


def offline_variable() -> str | None:
    """The first of :data:`OFFLINE_VARIABLES` set to a true value, else ``None``."""
    for name in OFFLINE_VARIABLES:
        if os.environ.get(name, "").strip().upper() in _TRUE:
            return name
    return None


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def is_unreachable(err: BaseException) -> bool:
    """Whether ``err`` or an exception it came from is a connection or offline-mode error."""
    for e in _chain(err):
        if isinstance(e, ConnectionError | TimeoutError | socket.gaierror):
            return True
        if any(part in cls.__name__ for cls in type(e).__mro__ for part in _UNREACHABLE_NAMES):
            return True
    return False


def _explain(err: BaseException, source: Source, dataset: str) -> str:
    lines = str(err).strip().splitlines()
    cause = type(err).__name__ + (f": {lines[0][:200]}" if lines else "")
    where = f"cannot get {dataset} ({source})"
    variable = offline_variable()
    if variable:
        return f"{where}: {variable} is set and no cached copy was found ({cause})"
    if is_unreachable(err):
        return f"{where}: the Hugging Face Hub or GitHub is unreachable; offline? ({cause})"
    if source.data_files and isinstance(err, FileNotFoundError):
        # datasets reports an unreachable URL as a missing file; the URL is pinned to a commit.
        return f"{where}: not found, so GitHub is likely unreachable; offline? ({cause})"
    return f"{where}: {cause}"
