"""Atomic file writes: every file the project writes (checkpoints, metrics, results, plots).

A file is written to a temporary file in the destination's directory and moved into place
with ``os.replace``, so a reader (or a resumed run after a crash) sees either the old file
or the new one, never half of one. The temporary file is created by the writer itself, so
the result gets the umask's permissions (not ``mkstemp``'s 0600).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import uuid
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_json", "atomic_torch_save", "json_safe",
           "clean_stale_temp_files", "writable_dir"]

# the temporary files atomic_path creates: .<name>.<pid>.<12 hex>.tmp<suffix>
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{12}\.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, parent folders created); on
    success move it onto ``path`` with ``os.replace``, on error remove it and leave ``path``
    untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # on disk before it replaces the old file (power loss)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def json_safe(obj: Any) -> Any:
    """``obj`` as values JSON can hold, by one rule for every file the project writes: a
    non-finite float (NaN, inf) becomes None (``null``: no figure, never the string "inf" nor
    the bare ``NaN`` that JSON parsers reject); numpy / torch scalars become Python numbers,
    arrays and tuples lists; anything else JSON cannot write (a path, a dtype) its text."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    for convert in ("item", "tolist"):  # numpy / torch scalars, then arrays
        try:
            return json_safe(getattr(obj, convert)())
        except (AttributeError, TypeError, ValueError, RuntimeError):
            pass
    return str(obj)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """``obj`` as indented, valid JSON with a final newline: NaN and inf are written as
    ``null`` (:func:`json_safe`), never as the bare ``NaN`` that JSON parsers reject."""
    atomic_write_text(path, json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Remove the temporary files :func:`atomic_path` left in ``directory`` when its process
    was killed mid-write (``kill -9``, power loss): those whose writer process is no longer
    running. Returns the removed paths; a missing directory has none."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for path in directory.iterdir():
        match = _TEMP_NAME.match(path.name)
        if match and path.is_file() and int(match["pid"]) != os.getpid() and not _pid_alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def writable_dir(path: str | os.PathLike, flag: str = "--output-dir") -> Path:
    """``path`` as a directory this process can write into, created if missing; ValueError in
    one line (naming ``flag``) if it is a file, cannot be created or is not writable. Commands
    call it before any work starts."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{flag} {path} cannot be created: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path} is not writable")
    return path
