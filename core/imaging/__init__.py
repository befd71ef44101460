"""Imaging: find files, index headers into Patient > Study > Series > Instance, decode pixels.

Public API (stable names other packages use; details in each module):
- ``core.imaging.model``: LoadError, Instance (+ PixelInfo), Series, Study, Patient, StudyIndex,
  Frame
- ``core.imaging.sources``: files / folders / zip members / DICOMDIR -> instance paths;
  ``open_bytes``, ``open_stream``, ``read_dataset`` for any instance path
- ``core.imaging.index.build_index(paths, ...) -> StudyIndex``: headers only, in parallel;
  ``merge`` and ``add_paths`` to open more into an existing index
- ``core.imaging.header.read_header(path)``: one file's header (``scan`` is its fast path)
- ``core.imaging.pixels.read_frame(instance, frame=0) -> Frame``: decode + modality LUT
- ``core.imaging.display.render(frame, window=None, invert=None) -> uint8 array``: VOI +
  presentation, exactly what the viewer paints and ``doctorai render`` writes
- ``core.imaging.presets``: window presets per modality (CT in HU, the others relative to the
  image) and the robust percentile window
- ``core.imaging.volume``: whole-series loading to a volume in modality units, progressive;
  ``iter_load_slices(refs, order)`` loads only the given slices
- ``core.imaging.progressive.first_image(files) -> FirstImage | None``: one decoded frame of the
  middle file, shown while a folder is still being indexed (``build_index(on_files=...)``)
- ``core.imaging.frame_order``: display order of enhanced multi-frame frames
  (``Instance.frame_order``; ``model.display_frames(instance)``)
"""
