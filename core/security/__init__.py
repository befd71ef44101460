"""Local accounts, roles and the session (login, automatic lock) - all audited."""
