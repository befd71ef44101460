"""Imaging: find files, index headers into Patient > Study > Series > Instance, decode pixels.

Public API (stable names other packages use):
- ``core.imaging.model``: LoadError, Instance, Series, Study, Patient, StudyIndex, Frame
- ``core.imaging.index.build_index(paths, ...) -> StudyIndex``: headers only, in parallel
- ``core.imaging.pixels.read_frame(instance, frame=0) -> Frame``: decode + modality LUT
- ``core.imaging.display.render(frame, window=None, invert=None) -> uint8 array``: VOI +
  presentation, exactly what the viewer paints and ``doctorai render`` writes
- ``core.imaging.volume``: whole-series loading to a volume in modality units, progressive
"""
