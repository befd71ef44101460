"""The application layer: the use cases of a reading session, called by both front ends
(desktop/ and cli/).

Each use case does the whole job in one place: checks the actor's permission
(``Workstation.require``), performs it, stores it, writes the audit event naming user, role,
patient, study, series and instances (``core.audit.events``), and queues what goes upstream,
in one transaction where it writes. Front ends never build an audit event or touch SQL.

- ``workstation``: the open profile and who acts now (signed-in account or the CLI's OS user)
- ``access``: a series viewed, files indexed
- ``model_runs`` / ``results``: run a model and record it; accept, reject, comment
- ``exports``: a file with patient data leaves the workstation (audited first)
- ``accounts``: add accounts (admins only, but the first)
- ``model_admin``: install the channel's version of a model, roll one back (admins; the
  background sync installs as 'system')
- ``settings_admin``: IT's settings on this workstation (a PACS node's secret; admins)
- ``sync``: one sync pass (send, last success, enrol, channel models, Security Alerts)
- ``pacs_audit``: the PACS layer's audit sink, in the current actor's name
"""
