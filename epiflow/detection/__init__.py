"""2D detection: pose detectors, video reading and person crops.

One home for what both the pipeline (:mod:`epiflow.pipeline.detect`, its Ray workers) and
prediction (:mod:`epiflow.models.predict`) run on images. It sits below both: it imports only
the bottom layer (:mod:`epiflow.skeleton`, :mod:`epiflow.keypoints`, :mod:`epiflow.naming`),
never the pipeline, the store or the models.
"""
