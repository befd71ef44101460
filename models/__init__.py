"""Model packages: the manifest format, one adapter per framework, and the shipped zoo."""
