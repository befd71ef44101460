"""The tamper-evident audit trail (PS3.15 / IHE ATNA vocabulary) in the encrypted database."""
