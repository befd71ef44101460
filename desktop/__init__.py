"""The PySide6 GUI: the only package that imports Qt, and the owner of all GUI threading."""
