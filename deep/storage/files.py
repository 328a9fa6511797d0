"""Run files: atomic writes, byte-deterministic checkpoints with their SHA-256, out-dir locks.

A file written here is either left as it was or holds the complete new content. A torch file written
by :func:`save_atomically` is the same bytes for the same payload and carries the SHA-256 of its
archive in the zip comment, which :func:`load_resume_checkpoint` checks.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

_DIGEST_MARK = b"spacql-sha256:"
_DIGEST_COMMENT = len(_DIGEST_MARK) + 64
_END_OF_CENTRAL_DIRECTORY = b"PK\x05\x06"  # 22 bytes, the last 2 the zip comment's length
_TEMPORARY = re.compile(r"^\..+\.(\d+)\.tmp$")


class OutDirError(Exception):
    """A run's out dir or one of its files stops the run; the CLIs print it as one ``error:`` line, exit 2."""


class CheckpointError(OutDirError, ValueError):
    """A checkpoint that cannot be resumed: damaged, not a spacql checkpoint, or of another config."""


class MissingCheckpointError(OutDirError, FileNotFoundError):
    """``--resume`` without a checkpoint."""


class WriteError(OutDirError, OSError):
    """A file could not be written (full disk, no permission, ...); ``errno`` is the cause's."""


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes (recorded for every shipped checkpoint)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def torch_bytes(payload) -> bytes:
    """``torch.save(payload)``'s bytes, the same for the same payload, with their SHA-256 as the zip comment.

    Saving to memory fixes the archive's internal name (torch.save to a path names it after the
    file, so a temporary file's pid would end up inside the archive).
    """
    import torch

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    if data[-22:-18] != _END_OF_CENTRAL_DIRECTORY or data[-2:] != b"\0\0":
        raise RuntimeError("torch.save wrote no plain zip archive; cannot record its SHA-256")
    comment = _DIGEST_MARK + hashlib.sha256(data).hexdigest().encode()
    return data[:-2] + len(comment).to_bytes(2, "little") + comment


def check_digest(data: bytes, path) -> bool:
    """Whether ``data`` (a file's bytes) records its SHA-256; raises :class:`CheckpointError` if it does not match.

    Files without a recorded digest (written by torch.save directly, or before digests) pass unchecked.
    """
    comment = data[-_DIGEST_COMMENT:]
    eocd = len(data) - _DIGEST_COMMENT - 22
    if (
        eocd < 0
        or not comment.startswith(_DIGEST_MARK)
        or data[eocd : eocd + 4] != _END_OF_CENTRAL_DIRECTORY
        or int.from_bytes(data[eocd + 20 : eocd + 22], "little") != _DIGEST_COMMENT
    ):
        return False
    archive = data[: eocd + 20] + b"\0\0"
    if hashlib.sha256(archive).hexdigest().encode() != comment[len(_DIGEST_MARK) :]:
        raise CheckpointError(
            f"resume: {path} is damaged: its SHA-256 differs from the one recorded when it was written"
        )
    return True


def load_resume_checkpoint(path, device, config: dict, resumable_fields, required: Iterable[str] = ()) -> dict:
    """The checkpoint at ``path`` that ``--resume`` continues, with errors naming ``resume``.

    ``resumable_fields(config_dict)`` keeps the config fields a resumed run must share with its
    checkpoint; a missing checkpoint (:class:`MissingCheckpointError`), a damaged one, one that is
    not a dict with ``config`` and the ``required`` keys, or one written with other such fields
    (:class:`CheckpointError`) is an error.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise MissingCheckpointError(f"resume: no checkpoint at {path}")
    data = path.read_bytes()
    check_digest(data, path)

    def foreign(reason: str) -> CheckpointError:
        return CheckpointError(f"resume: {path} is not a spacql checkpoint ({reason})")

    if not data:
        raise foreign("the file is empty")
    if not data.startswith(b"PK\x03\x04"):
        raise foreign("not a torch.save zip archive")
    try:
        state = torch.load(io.BytesIO(data), weights_only=True, map_location=device)
    except Exception as error:
        if "weights only" in str(error).lower() or "weights_only" in str(error):
            raise foreign("it holds objects other than tensors and plain data") from error
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise foreign(f"torch.load: {first_line}") from error
    keys = ("config", *required)
    if not isinstance(state, dict):
        raise foreign(f"it holds a {type(state).__name__}, not a dict")
    missing = [key for key in keys if key not in state]
    if missing or not isinstance(state["config"], dict):
        raise foreign(f"no {', '.join(missing or ['config dict'])}")
    written, asked = resumable_fields(state["config"]), resumable_fields(config)
    if written != asked:

        def shown(value):
            return "the default" if value is None else repr(value)

        differing = ", ".join(
            f"{key} {shown(written.get(key))} (this run: {shown(asked.get(key))})"
            for key in sorted(set(written) | set(asked))
            if written.get(key) != asked.get(key)
        )
        raise CheckpointError(f"resume: the checkpoint at {path} was written with another config: {differing}")
    return state


def save_atomically(payload, path) -> None:
    """Write :func:`torch_bytes` of ``payload`` to ``path`` through :func:`write_atomically`."""
    data = torch_bytes(payload)
    write_atomically(path, lambda temporary: temporary.write_bytes(data))


def write_atomically(path, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary)`` on a sibling temporary file, then rename it over ``path``.

    On any failure the temporary file is removed and ``path`` is untouched; an OSError of writing
    (full disk, ...) becomes a :class:`WriteError` naming ``path``.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as error:
        if isinstance(error, WriteError) or error.filename not in (None, str(temporary)):
            raise  # already described, or about another file (a source that write() reads)
        raise write_error(path, error) from error
    finally:
        temporary.unlink(missing_ok=True)


def write_error(path, error: OSError) -> WriteError:
    """``error`` (of writing ``path``) as a :class:`WriteError`: ``could not write NAME in DIR: REASON``."""
    path = Path(path)
    described = WriteError(f"could not write {path.name} in {path.parent}: {error.strerror or error}")
    described.errno = error.errno
    return described


def remove_stale_temporaries(directory) -> list[Path]:
    """Remove the ``.<name>.<pid>.tmp`` files in ``directory`` of processes that are gone; returns them."""
    removed = []
    for candidate in Path(directory).iterdir():
        match = _TEMPORARY.match(candidate.name)
        if match is None or not candidate.is_file() or _alive(int(match.group(1))):
            continue
        candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # PermissionError: it exists as another user's process
    return True


def remove_run_files(directory, names: Iterable[str]) -> None:
    """Delete ``directory / name`` (files or folders) for every name that exists."""
    for name in names:
        target = Path(directory) / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


@contextmanager
def locked_out_dir(directory) -> Iterator[Path]:
    """Create ``directory`` and hold an exclusive advisory lock on its ``.lock`` file while inside.

    The lock (``flock``) is released when the block ends or the process dies; a second holder gets
    an :class:`OutDirError` naming the pid written into ``.lock`` by the first.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no flock (Windows): unlocked
        yield directory
        return
    descriptor = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip() or "unknown"
            raise OutDirError(f"out_dir {directory} is in use by another run (pid {holder})") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield directory
    finally:
        os.close(descriptor)
