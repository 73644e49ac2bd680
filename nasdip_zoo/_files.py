"""File helpers under everything else: atomic writes (readers never see half a file, a failed write
leaves nothing behind) and JSON reads whose error names the file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` on a temp file in the target folder, then ``os.replace`` it into place.

    The file gets the usual permissions (0666 less the umask), not mkstemp's private 0600.
    """
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {folder}")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp" + p.suffix, dir=folder)
    os.close(fd)
    try:
        os.chmod(tmp, _default_mode())
        write(tmp)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return p


def read_json(path: str | os.PathLike, hint: str = "") -> Any:
    """Parse a JSON file; invalid JSON is a ValueError naming the file (plus ``hint``, e.g. the fix)."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not valid JSON ({e}){hint}") from None
