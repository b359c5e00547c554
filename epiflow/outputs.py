"""What every command that writes files promises: it never writes over one of its own inputs,
and a file it writes is either the whole new file or, when it was killed or failed, the old
file untouched (never a half-written one under the final name).

Three pieces, used by every command in :mod:`epiflow.cli` and by the writers they call:

- :func:`check_file_outputs`, called before any work is done, refuses a file output that names
  an existing folder (or a folder output that names an existing file);
- :func:`check_outputs_not_inputs`, called before any work is done, compares the real paths
  (symlinks resolved, hard links seen by inode) of the outputs and the inputs, and refuses an
  output that is an input, lies inside an input folder (``export S.zarr --out S.zarr/x.trc``) or
  contains an input (``run --out DIR`` with ``--keypoints DIR/kp.npz``);
- :func:`atomic_path` / :func:`atomic_open` / :func:`atomic_write_bytes` /
  :func:`atomic_write_text`: write to a temporary file in the same folder, flush it to disk, then
  ``os.replace`` it over the final name (atomic on POSIX and Windows); the temporary file is
  removed when the writer raises.

This module imports nothing from epiflow, so every layer can use it.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Iterator, Mapping

__all__ = ["OutputError", "check_outputs_not_inputs", "check_file_outputs", "atomic_path",
           "atomic_open", "atomic_write_bytes", "atomic_write_text"]


class OutputError(ValueError):
    """An output that would write over an input (a ValueError: the CLI exits 2)."""


def _is_url(path) -> bool:
    return "://" in str(path)


def _real(path) -> Path:
    """The absolute path with every symlink resolved (parts that do not exist yet kept)."""
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def _same_file(a: Path, b: Path) -> bool:
    """True for one path, also through hard links (both must exist to tell)."""
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _clash(out: Path, inp: Path) -> tuple[str, str] | None:
    """How the output ``out`` would hurt the input ``inp`` (relation, harm), or None."""
    if _same_file(out, inp):
        return "is the same file as", "overwrite the input"
    if inp in out.parents:
        return "lies inside", "change the input"
    if out in inp.parents:
        return "is a folder that contains", "write over the input"
    return None


def check_outputs_not_inputs(outputs: Mapping[str, object | None],
                             inputs: Mapping[str, object | None]) -> None:
    """Refuse outputs that would write over, into or around an input.

    Args:
        outputs: ``{argument name: path}`` of what the command will write, e.g.
            ``{"--out": "poses.npz"}``; None values (options not given) and URLs are skipped.
        inputs: ``{argument name: path}`` of what it reads, the same way.

    Raises:
        OutputError naming both arguments and both paths, and what to do.
    """
    ins = [(name, p, _real(p)) for name, p in inputs.items() if p and not _is_url(p)]
    for out_name, out in outputs.items():
        if not out or _is_url(out):
            continue
        real = _real(out)
        for in_name, inp, in_real in ins:
            clash = _clash(real, in_real)
            if clash:
                raise OutputError(
                    f"{out_name} {os.fspath(out)!r} {clash[0]} {in_name} {os.fspath(inp)!r}: "
                    f"writing it would {clash[1]}; give a path outside the inputs")


def check_file_outputs(outputs: Mapping[str, object | None], example: str,
                       folders: Mapping[str, object | None] | None = None) -> None:
    """Refuse, before any work, a file output that is an existing folder and a folder output that
    is an existing file (a rename cannot replace either).

    Args:
        outputs: ``{argument name: path}`` of the files the command writes; None values and URLs
            are skipped.
        example: a file name the command would write, for the message
            (``"--out X is a folder; give a file path such as X/poses.npz"``).
        folders: ``{argument name: path}`` of the folders the command writes into.

    Raises:
        OutputError naming the argument and the path.
    """
    for name, out in outputs.items():
        if out and not _is_url(out) and Path(out).is_dir():
            raise OutputError(f"{name} {os.fspath(out)} is a folder; give a file path such as "
                              f"{Path(out) / example}")
    for name, out in (folders or {}).items():
        if out and not _is_url(out) and Path(out).exists() and not Path(out).is_dir():
            raise OutputError(f"{name} {os.fspath(out)} is a file, not a folder; give a new "
                              f"folder (or one this command wrote before)")


def _temp_name(path: Path, keep_suffix: bool) -> Path:
    """A fresh hidden name in ``path``'s folder: ``.name.<token>.tmp`` (or ``...tmp.npz``)."""
    token = secrets.token_hex(4)
    tail = f".tmp{path.suffix}" if keep_suffix else ".tmp"
    return path.with_name(f".{path.name}.{token}{tail}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path, keep_suffix: bool = True) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; renamed over ``path`` on success.

    The temporary file lies in the same folder (so the rename is atomic), is hidden, and keeps
    ``path``'s suffix when ``keep_suffix`` (for writers that pick the format from it, or that
    append one, such as ``np.savez``). Parent folders are created. When the block raises, the
    temporary file is removed and ``path`` is left as it was.

    Example:
        >>> with atomic_path("poses.npz") as tmp:  # doctest: +SKIP
        ...     np.savez(tmp, points3d=points)
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; cannot write a file in its place: give a file "
                          f"path such as {path / ('output' + path.suffix)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path, keep_suffix)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # reserve the name
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """``open(path, mode)`` that writes a temporary file and renames it over ``path`` when the
    block ends without an error (see :func:`atomic_path`). ``mode`` is "w" or "wb"."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a whole file: mode 'w' or 'wb', not {mode!r}")
    with atomic_path(path, keep_suffix=False) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``Path(path)``."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns ``Path(path)``."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)
