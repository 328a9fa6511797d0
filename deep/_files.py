"""Atomic file writes: a file is either left as it was or holds the complete new content."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes (recorded for every shipped checkpoint)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_atomically(payload, path) -> None:
    """``torch.save(payload)`` to ``path`` through :func:`write_atomically`."""
    import torch

    write_atomically(path, lambda temporary: torch.save(payload, temporary))


def write_atomically(path, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary)`` on a sibling temporary file, then rename it over ``path``.

    On any failure the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
