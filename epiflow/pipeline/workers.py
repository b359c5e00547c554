"""The two kinds of Ray actors of the pipeline, as plain classes (the orchestrator wraps them with
``ray.remote``; tests call them directly).

- :class:`~epiflow.pipeline.detect.DetectWorker` (in :mod:`epiflow.pipeline.detect`): one 2D
  detector each, fed detection units.
- :class:`SessionWorker`: ingests sessions and runs their stages after detection (calibrate,
  triangulate, complete). It stays up for the whole run, so those stages start without a new
  worker process; its constructor returns at once and imports the geometry code (torch) in a
  background thread while the first sessions are being ingested and detected.
"""
from __future__ import annotations

import threading

from epiflow.pipeline.config import RunConfig, SessionConfig

__all__ = ["SessionWorker", "warm_up"]


def warm_up(*modules: str) -> threading.Thread:
    """Import ``modules`` in a daemon thread (their first use then finds them loaded); one that
    cannot be imported is left to fail where it is used."""
    import importlib

    def load():
        for name in modules:
            try:
                importlib.import_module(name)
            except ImportError:
                pass
    thread = threading.Thread(target=load, name="epiflow-warm-up", daemon=True)
    thread.start()
    return thread


class SessionWorker:
    """Ingest and finish sessions of a store (see :mod:`epiflow.pipeline.ingest` and
    :mod:`epiflow.pipeline.stages`)."""

    def __init__(self):
        self._warm = warm_up("epiflow.pipeline.stages", "epiflow.calibration.triangulation",
                             "epiflow.calibration.from_people")

    def ping(self) -> None:
        """Nothing: the orchestrator's first call, which sets up the connection early."""

    def ingest(self, store_url: str, session: SessionConfig, cfg: RunConfig):
        """:func:`~epiflow.pipeline.ingest.ingest_session`, timed: (IngestResult, StageRecord)."""
        from epiflow.pipeline.ingest import ingest_session
        from epiflow.pipeline.report import timed
        return timed("ingest", session.name, 0, ingest_session, store_url, session, cfg)

    def finish(self, store_url: str, session: SessionConfig, cfg: RunConfig):
        """:func:`~epiflow.pipeline.stages.finish_session`: calibrate, triangulate, complete."""
        from epiflow.pipeline.stages import finish_session
        return finish_session(store_url, session, cfg)
