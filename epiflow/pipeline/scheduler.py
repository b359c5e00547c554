"""Which detection unit a free worker gets next: units of the stream (one camera of one session)
it is already reading, in order, so its video stays open and decodes without seeking; else a
stream nobody reads yet; else the last unit of the longest stream left (work stealing)."""
from __future__ import annotations

from collections import OrderedDict, deque

from epiflow.pipeline.detect import DetectUnit

__all__ = ["UnitScheduler"]


class UnitScheduler:
    """A queue of detection units grouped by stream, with per-worker stream affinity."""

    def __init__(self):
        self._streams: OrderedDict[tuple[str, int], deque[DetectUnit]] = OrderedDict()
        self._owner: dict[tuple[str, int], int] = {}
        self._current: dict[int, tuple[str, int]] = {}

    def add(self, units: list[DetectUnit]) -> None:
        """Queue units (any order; each stream is served in frame order)."""
        for u in sorted(units, key=lambda u: (u.session_id, u.camera, u.start)):
            self._streams.setdefault((u.session_id, u.camera), deque()).append(u)

    def __len__(self) -> int:
        return sum(len(q) for q in self._streams.values())

    def drop_session(self, session_id: str) -> int:
        """Forget the queued units of a session (it failed); returns how many were dropped."""
        keys = [k for k in self._streams if k[0] == session_id]
        return sum(len(self._streams.pop(k)) for k in keys)

    def _pop(self, key: tuple[str, int], worker: int, last: bool = False) -> DetectUnit:
        queue = self._streams[key]
        unit = queue.pop() if last else queue.popleft()
        if not queue:
            del self._streams[key]
        self._current[worker] = key
        return unit

    def next_for(self, worker: int) -> DetectUnit | None:
        """The next unit for ``worker``, or None when nothing is queued."""
        key = self._current.get(worker)
        if key in self._streams:
            return self._pop(key, worker)
        free = [k for k in self._streams if k not in self._owner]
        if free:
            self._owner[free[0]] = worker
            return self._pop(free[0], worker)
        if not self._streams:
            return None
        longest = max(self._streams, key=lambda k: len(self._streams[k]))
        return self._pop(longest, worker, last=True)
