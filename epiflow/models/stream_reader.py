"""A store session opened once for streaming, and its frames read with every chunk at once.

:class:`~epiflow.models.streaming.StreamingPoseDataset` reads a session unit by unit (a few
hundred frames). Through :class:`~epiflow.store.Session` each unit paid for its metadata again:
the session's attributes re-read (``status``), each array's ``zarr.json`` looked up and fetched,
the cameras parsed, one array after the other, and s3fs asked each file's size before reading
it: some 80 requests per unit against an S3 server (moto, ``benchmarks/loader.py``), a dozen of
them its chunks, one at a time. :class:`SessionReader` opens a session once per process: the
arrays a unit needs (their metadata fetched together), the attributes as the session was opened
(a store being written while it is streamed is not followed), the cameras, the person ids.
:meth:`SessionReader.frames` then reads frames ``lo:hi`` of every array together (zarr's
asynchronous reads: all chunks of all arrays in flight at once, one round trip per unit, not one
per array) and gives back a :class:`FramesSession`, a :class:`~epiflow.store.Session` over those
frames alone, which the in-memory path's code
(:meth:`~epiflow.models.data.SessionArrays.people_from_store`) reads unchanged: the same values.
"""
from __future__ import annotations

import asyncio

import numpy as np
import zarr.api.asynchronous as zarr_async
from zarr.core.sync import sync

from epiflow.store import Session

__all__ = ["FramesSession", "SessionReader"]

#: the arrays along T that a unit reads when the session is labelled (what ``Session.labels``
#: reads), besides ``keypoints2d`` always, ``gt3d`` when written and ``crops`` for image models
LABEL_ARRAYS = ("pseudo3d", "pseudo3d_weight", "reproj_error", "pseudo3d_views", "person_slots")


class _Frames:
    """Frames ``lo:lo + len(data)`` of a store array, read: indexed with a slice along T in the
    session's frame numbers, as the zarr array would be."""

    def __init__(self, data: np.ndarray, lo: int, where: str):
        self.data, self.lo, self.where = data, lo, where

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __getitem__(self, key):
        hi = self.lo + len(self.data)
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError(f"{self.where}: frames read for streaming take a slice along T; "
                            f"got {key!r}")
        start = self.lo if key.start is None else key.start
        stop = hi if key.stop is None else key.stop
        if start < self.lo or stop > hi:
            raise IndexError(f"{self.where}: frames {start}:{stop} asked of the {self.lo}:{hi} "
                             f"read; read the unit with its window's margin")
        return self.data[start - self.lo:max(stop, start) - self.lo]


class FramesSession(Session):
    """A :class:`~epiflow.store.Session` whose arrays are frames ``lo:hi`` already read (index
    them with slices inside ``lo:hi``, in the session's frame numbers) and whose attributes,
    cameras and person ids come from :class:`SessionReader`: reading it costs no request."""

    def __init__(self, reader: "SessionReader", arrays: dict[str, _Frames]):
        session = reader.session  # frozen: its attributes as read once when it was opened
        super().__init__(session.group, session.id, session.url, session.snapshot)
        self._reader, self._frames = reader, arrays

    def _array(self, name: str, optional: bool = False):
        if name == "person_ids":
            return self._reader.person_ids
        if name in self._frames:
            return self._frames[name]
        if optional and name not in self._reader.arrays:
            return None
        raise KeyError(f"session {self.id!r} of {self.url!r}: array {name!r} was not read for "
                       f"streaming (read: {', '.join(self._frames)})")

    @property
    def rig(self):
        return self._reader.rig

    @property
    def gt_rig(self):
        return self._reader.gt_rig


class SessionReader:
    """A session opened once for streaming: the arrays a unit reads (their metadata fetched
    together, once), the attributes (as the session was opened), the cameras (``rig``,
    ``gt_rig``) and the person ids (N,).

    Args:
        session: an :class:`~epiflow.store.Session` with cameras.
        images: also read the person crops (image models).
    """

    def __init__(self, session: Session, images: bool = False):
        self.session = session = session.frozen()       # attributes read once, kept
        names = ["keypoints2d"]
        if session.status.get("triangulate") == "done":
            names += LABEL_ARRAYS
        optional = ("gt3d", "person_ids") + (("crops",) if images else ())
        found = sync(_open_arrays(session.group, names, optional))
        ids = found.pop("person_ids", None)
        self.arrays = found
        self.person_ids = np.zeros(0, np.int64) if ids is None else \
            np.asarray(sync(ids.getitem(slice(None))), np.int64)
        self.rig, self.gt_rig = session.rig, session.gt_rig

    def whole(self, name: str) -> np.ndarray:
        """Array ``name`` (one the units read) read whole."""
        return np.asarray(sync(self.arrays[name].getitem(slice(None))))

    def frames(self, lo: int, hi: int) -> FramesSession:
        """Frames ``lo:hi`` of every array, read concurrently (all their chunks in flight at
        once), as a :class:`FramesSession`."""
        async def read_all():
            return await asyncio.gather(*(array.getitem(slice(lo, hi))
                                          for array in self.arrays.values()))
        where = f"session {self.session.id!r} of {self.session.url!r}"
        data = sync(read_all())
        return FramesSession(self, {name: _Frames(np.asarray(d), lo, f"{where}, {name}")
                                    for name, d in zip(self.arrays, data)})


async def _open_arrays(group, names: list[str], optional: tuple[str, ...]) -> dict:
    """The asynchronous zarr arrays ``names`` (required) and ``optional`` (left out when
    absent) of ``group``, their metadata fetched concurrently."""
    async def one(name: str):
        try:
            return await zarr_async.open_array(store=group.store, path=f"{group.path}/{name}",
                                               mode="r", zarr_format=3)
        except FileNotFoundError:
            if name in optional:
                return None
            raise KeyError(f"session {group.path!r} of the store has no array {name!r}; "
                           f"re-run `epiflow run` on the store to finish it") from None
    every = [*names, *optional]
    found = await asyncio.gather(*(one(n) for n in every))
    return {n: a for n, a in zip(every, found) if a is not None}
