"""Atomic file writes: a file is either left as it was or holds the complete new content."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes (recorded for every shipped checkpoint)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_resume_checkpoint(path, device, config: dict, resumable_fields) -> dict:
    """The checkpoint at ``path`` that ``--resume`` continues, with errors naming ``resume``.

    ``resumable_fields(config_dict)`` keeps the config fields a resumed run must share with its
    checkpoint; a missing checkpoint or one written with other such fields is an error.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"resume: no checkpoint at {path}")
    state = torch.load(path, weights_only=True, map_location=device)
    if resumable_fields(state["config"]) != resumable_fields(config):
        raise ValueError(f"resume: the checkpoint at {path} was written with another config")
    return state


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
