"""Scripts and helpers that train the zoo\x27s models (run standalone, never at start-up)."""
