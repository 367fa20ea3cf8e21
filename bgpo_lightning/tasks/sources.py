"""Where task rows come from: local JSON-lines files (optionally gzipped) or the Hub.

A source is a path (``.jsonl`` or ``.jsonl.gz``) or ``hf:<dataset>[:<config>]:<split>``, read
with the ``datasets`` library where it is installed and online (e.g. ``hf:openai/gsm8k:main:test``,
``hf:HuggingFaceH4/MATH-500:test``). Rows come with a location for error messages: the file
and 1-based line, or the dataset and row index.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bgpo_lightning.errors import ConfigError

HF_PREFIX = "hf:"


class SourceRowError(ValueError):
    """A row that is not a JSON object; the message names where it is."""


def is_hub_source(source: str | Path) -> bool:
    return isinstance(source, str) and source.startswith(HF_PREFIX)


def parse_hub_source(source: str) -> tuple[str, str | None, str]:
    """``hf:name[:config]:split`` -> ``(name, config, split)``."""
    parts = source[len(HF_PREFIX) :].split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise ConfigError(
            f"bad dataset source {source!r}; write hf:<dataset>[:<config>]:<split>, "
            "e.g. hf:openai/gsm8k:main:test"
        )
    return parts[0], (parts[1] if len(parts) == 3 else None), parts[-1]


def read_rows(source: str | Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Yields ``(location, row)`` for each row of ``source``, in order.

    Raises:
        FileNotFoundError: For a missing local file.
        ConfigError: For a malformed ``hf:`` source, or when ``datasets`` is not installed.
        SourceRowError: For a line that is not JSON or not a JSON object (naming file and line).
    """
    if is_hub_source(source):
        yield from _hub_rows(str(source))
    else:
        yield from _file_rows(Path(source))


def _file_rows(path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path} line {lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise SourceRowError(f"{where}: invalid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise SourceRowError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row


def _hub_rows(source: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    name, config, split = parse_hub_source(source)
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            f"{source!r} needs the `datasets` package (pip install datasets) and network access; "
            "or give the path of a local JSON-lines file"
        ) from None
    table = datasets.load_dataset(name, config, split=split)
    for index, row in enumerate(table):
        yield f"{source} row {index}", dict(row)
