"""Opening an input file with one rule for what it is not: text (TOML, JSON, XML, TRC, CSV) or an
npz of numpy arrays.

Every reader of a text input (camera TOML, caliscope and Shelf calibrations, Qualisys XML, run
configs and training recipes, TRC / CSV / JSON poses) reads it with :func:`read_text_file`, so that
random bytes, a binary file under a text name or a video renamed ``.toml`` get one message that
names the file and says what was expected, before any work, instead of Python's
``'utf-8' codec can't decode byte ...`` without a name. Every reader of an npz (keypoints, poses)
opens it with :func:`open_npz`, which never unpickles and says what a file that is not an npz is.

Bottom layer: imports nothing of epiflow.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

__all__ = ["TextFileError", "read_text_file", "open_npz"]


class TextFileError(ValueError):
    """A file that should be text is not (a ValueError: the CLI exits 2)."""


def read_text_file(path, what: str) -> str:
    """The text of ``path``, decoded as UTF-8.

    Args:
        path: the file.
        what: what the file should be, for the error, e.g. ``"a camera TOML"``.

    Raises:
        FileNotFoundError: ``path`` does not exist or is not a file.
        TextFileError: the bytes are not UTF-8 text (or hold NUL bytes, which no text format
            epiflow reads has), naming the file, the first bad byte and ``what``.

    Example:
        >>> read_text_file("Calib.toml", "a camera TOML")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "missing"
        raise FileNotFoundError(f"{str(path)!r} is {kind}; expected {what}")
    data = path.read_bytes()
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0  # the byte-order mark some editors write
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as err:
        at = start + err.start
        raise TextFileError(
            f"{path} is not a text file (byte 0x{data[at]:02x} at offset {at} is "
            f"not UTF-8: binary data, or a file saved in another encoding); expected {what}"
        ) from None
    if "\x00" in text:
        raise TextFileError(f"{path} is not a text file (a NUL byte at offset "
                            f"{start + data[start:].index(0)}: binary data); expected {what}")
    return text


def open_npz(path, what: str) -> np.lib.npyio.NpzFile:
    """``np.load(path, allow_pickle=False)`` of an npz (use it in a ``with`` block).

    Args:
        path: the file.
        what: what the file should be, for the error, e.g. ``"a poses npz (points3d, ...)"``.

    Raises:
        ValueError naming the file and ``what`` when it is not a zip of numpy arrays (random
        bytes, a zero-byte file, a pickle, a single ``.npy`` array).
    """
    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        reason = ("neither a zip nor an .npy array; numpy would read it only as a pickle, which "
                  "epiflow never loads") if "pickled" in str(err) else \
            f"{type(err).__name__}: {err}"
        raise ValueError(f"{path}: not an npz file (a zip of numpy arrays as numpy.savez writes; "
                         f"{reason}); expected {what}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: holds a single {type(z).__name__} (an .npy), not an npz of "
                         f"named arrays; expected {what}")
    return z
