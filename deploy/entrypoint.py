"""Container entry point: turn what ECS injects from Secrets Manager into what the backend reads,
then run the command (``python -m backend serve ...``) in this process's place.

- ``DOCTORAI_DB_HOST/PORT/NAME/USER/PASSWORD`` (the fields of RDS's generated secret) become
  ``DOCTORAI_BACKEND_DB_URL``, the password URL-quoted, with ``DOCTORAI_DB_SSLMODE`` and
  ``DOCTORAI_DB_SSLROOTCERT``. A ``DOCTORAI_BACKEND_DB_URL`` already set wins (docker compose).
- ``DOCTORAI_TUF_SNAPSHOT_KEY_PEM`` / ``..._TIMESTAMP_KEY_PEM`` (the online TUF keys) become
  ``<DOCTORAI_BACKEND_KEYS_DIR>/<role>.key``, mode 0600. Empty values write nothing, so the
  backend serves without re-signing and IT sees it (health, alert DoctorAITimestampExpiringSoon).

The secret variables are removed from the environment the backend gets. Standard library only:
the image installs nothing for it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote, urlencode

DB_PARTS = ("HOST", "PORT", "NAME", "USER", "PASSWORD")
ONLINE_ROLES = ("snapshot", "timestamp")


class EntrypointError(Exception):
    """A setting the container cannot start with; the message names the variable."""


def database_url(env: Mapping[str, str]) -> str | None:
    """The backend's SQLAlchemy URL from the secret's fields, or None when they are not given."""
    given = {p: env.get(f"DOCTORAI_DB_{p}", "") for p in DB_PARTS}
    if not any(given.values()):
        return None
    missing = [f"DOCTORAI_DB_{p}" for p, v in given.items() if not v]
    if missing:
        raise EntrypointError(f"database settings incomplete: {', '.join(missing)} not set")
    query = {"sslmode": env.get("DOCTORAI_DB_SSLMODE", "verify-full")}
    if env.get("DOCTORAI_DB_SSLROOTCERT"):
        query["sslrootcert"] = env["DOCTORAI_DB_SSLROOTCERT"]
    user, password = quote(given["USER"], safe=""), quote(given["PASSWORD"], safe="")
    return (
        f"postgresql+psycopg://{user}:{password}@{given['HOST']}:{given['PORT']}/"
        f"{quote(given['NAME'], safe='')}?{urlencode(query)}"
    )


def write_online_keys(env: Mapping[str, str]) -> list[Path]:
    """Write each non-empty online key PEM into the keys directory; return the files written."""
    pems = {r: env.get(f"DOCTORAI_TUF_{r.upper()}_KEY_PEM", "").strip() for r in ONLINE_ROLES}
    if not any(pems.values()):
        return []
    keys_dir = env.get("DOCTORAI_BACKEND_KEYS_DIR", "")
    if not keys_dir:
        raise EntrypointError("online TUF keys given but DOCTORAI_BACKEND_KEYS_DIR is not set")
    directory = Path(keys_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    for role, pem in pems.items():
        if not pem:
            continue
        if not pem.startswith("-----BEGIN ") or "PRIVATE KEY-----" not in pem:
            raise EntrypointError(
                f"DOCTORAI_TUF_{role.upper()}_KEY_PEM is not a PEM private key (the secret "
                f"holds '{role}' as written by 'doctorai-backend keys init')"
            )
        path = directory / f"{role}.key"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(pem + "\n")
        os.replace(tmp, path)
        written.append(path)
    return written


def prepare(env: Mapping[str, str]) -> dict[str, str]:
    """The backend's environment: URL composed, keys written, secret parts removed."""
    out = dict(env)
    url = None if env.get("DOCTORAI_BACKEND_DB_URL") else database_url(env)
    if url:
        out["DOCTORAI_BACKEND_DB_URL"] = url
    write_online_keys(env)
    for name in [f"DOCTORAI_DB_{p}" for p in (*DB_PARTS, "SSLMODE", "SSLROOTCERT")] + [
        f"DOCTORAI_TUF_{r.upper()}_KEY_PEM" for r in ONLINE_ROLES
    ]:
        out.pop(name, None)
    return out


def main(argv: Sequence[str]) -> int:
    if not argv:
        print("usage: entrypoint.py COMMAND [ARG...]", file=sys.stderr)
        return 2
    try:
        env = prepare(os.environ)
    except (EntrypointError, OSError) as exc:
        print(f"doctorai entrypoint: {exc}", file=sys.stderr)
        return 78  # EX_CONFIG: ECS shows the exit code and the log line
    try:
        os.execvpe(argv[0], list(argv), env)  # the image's own command, in this process's place
    except OSError as exc:
        print(f"doctorai entrypoint: cannot run {argv[0]!r}: {exc}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
