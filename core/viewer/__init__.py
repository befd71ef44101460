"""The viewer's state as plain Python objects with psygnal events (no Qt).

``desktop/`` widgets subscribe to these objects and write back through them, so the same
state drives tests and scripts without a window (napari's model/view split).

- ``core.viewer.viewport.Viewport``: window/level, zoom, pan, rotation, flips, invert, slice, cine
- ``core.viewer.state.ViewerState``: the open index, the current series and its loaded frames
- ``core.viewer.presets``: window presets per modality on keys 1..9, the user's own, and auto
- ``core.viewer.transform``: image <-> screen coordinates as pure functions
- ``core.viewer.measure``: length in mm and rectangle ROI statistics in modality units
- ``core.viewer.overlay``: the four-corner overlay text, honouring the hide-PHI toggle
- ``core.viewer.layout.Layout``: the reading room's grid of viewports (one ViewerState each over
  shared frames), active and maximised viewport
- ``core.viewer.linking.LinkGroup``: synchronised scrolling (by position or index, offsets),
  window/level and zoom/pan, each switchable; the crosshair
- ``core.viewer.reference_lines``: image planes in patient space, reference lines, nearest slice
- ``core.viewer.hanging``: hanging protocols (layout, series per viewport, plane, window, stages)
"""
