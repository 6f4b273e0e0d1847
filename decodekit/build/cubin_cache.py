"""Cubins on disk, keyed by the build digest: a second process does not rebuild what one built.

The folder is ``$DECODEKIT_CACHE`` if set, else ``$XDG_CACHE_HOME/decodekit/cubin``
(``~/.cache/decodekit/cubin``). One file per digest holds a JSON header line (the NVRTC log,
its wall time and the cubin's SHA-256) and the cubin; it is written to a temp file in the
same folder and renamed, so concurrent processes building the same kernel each leave a
whole file and a reader never sees half of one. A file that does not check out (truncated,
hand-edited) is ignored and rebuilt. ``DECODEKIT_CACHE=off`` turns the cache off.

>>> import tempfile; d = tempfile.TemporaryDirectory()
>>> store("ab12", b"\\x7fELF...", "log", 0.2, folder=d.name); load("ab12", folder=d.name)[1]
'log'
>>> d.cleanup()
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

ENV = "DECODEKIT_CACHE"
_MAGIC = b"decodekit-cubin 1\n"


def folder() -> Path | None:
    """The cache folder, or None when ``$DECODEKIT_CACHE`` is ``off``."""
    env = os.environ.get(ENV)
    if env:
        return None if env.lower() in ("off", "0", "none") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "decodekit" / "cubin"


def _path(digest: str, where) -> Path | None:
    base = Path(where) if where is not None else folder()
    return None if base is None else base / f"{digest}.cubin"


def load(digest: str, *, folder=None) -> tuple[bytes, str, float] | None:
    """``(cubin, log, seconds)`` stored under ``digest``, or None."""
    path = _path(digest, folder)
    try:
        data = path.read_bytes() if path is not None else b""
    except OSError:
        return None
    if not data.startswith(_MAGIC):
        return None
    head, sep, cubin = data[len(_MAGIC) :].partition(b"\n")
    try:
        meta = json.loads(head)
        ok = sep and meta["sha256"] == hashlib.sha256(cubin).hexdigest()
    except (ValueError, KeyError, TypeError):
        return None
    return (cubin, str(meta.get("log", "")), float(meta.get("seconds", 0.0))) if ok else None


def store(digest: str, cubin: bytes, log: str, seconds: float, *, folder=None) -> None:
    """Write the build under ``digest`` (temp file + rename); a cache that cannot be
    written (read-only home, full disk) costs a rebuild next time, never an error."""
    path = _path(digest, folder)
    if path is None:
        return
    meta = {"sha256": hashlib.sha256(cubin).hexdigest(), "log": log, "seconds": seconds}
    data = _MAGIC + json.dumps(meta).encode() + b"\n" + cubin
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as f:
            tmp = f.name
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
