"""A trap for host synchronizations made by deep/'s code (not torch's own)."""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

import deep

DEEP = Path(deep.__file__).resolve().parent
SYNCHRONIZING = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__")


def trap_host_synchronization(monkeypatch) -> list[str]:
    """Record every ``.item()``, ``.tolist()``, ``bool()``, ``float()``, ``int()`` or index use of a tensor
    called from a file under deep/; returns the (growing) list of ``"name at file"``."""
    calls: list[str] = []

    def guard(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            caller = Path(inspect.stack()[1].filename).resolve()
            if caller.is_relative_to(DEEP):
                calls.append(f"{name} at {caller.name}")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)

    for name in SYNCHRONIZING:
        guard(name)
    return calls
