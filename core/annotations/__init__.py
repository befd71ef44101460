"""What the radiologist draws on an image: measurements, ROIs, arrows and text (issue 17).

Plain Python, no Qt: the model (``model``), what each tool measures in mm (``compute``), where
the labels go (``labels``), undo/redo (``undo``), one viewer session's annotations
(``session``) and the SQL of their persistence (``store``).
The use cases that check permissions, write and audit are in ``core.app.annotations``.
"""
