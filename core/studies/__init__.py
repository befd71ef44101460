"""The local study database (every study opened or retrieved, searchable after a restart) and
the priors of a study (the same patient's other studies, locally and on the PACS nodes).

``catalogue`` reads and writes the ``studies``/``series`` tables of the encrypted profile;
``priors`` matches patients by Patient ID and issuer, never by name. The use cases that audit
these reads and writes are in ``core.app.studies`` and ``core.app.access``.
"""
