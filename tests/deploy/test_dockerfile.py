"""deploy/Dockerfile installs every distribution the backend imports and copies every core module
it imports (issue 19 review: the image lacked alembic, Jinja2, argon2-cffi, pyotp and
core/sync/status_report.py, so it could not start). No docker daemon here: the Dockerfile is read
as Docker reads it (tests/deploy/dockerfile_parse.py) and compared with an ast walk of backend/."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path, PurePosixPath
from types import ModuleType

import pytest

from tests.deploy import dockerfile_parse

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "backend_requirements", ROOT / "deploy" / "backend_requirements.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def missing_distributions(dockerfile: str, generator: ModuleType) -> set[str]:
    """Distributions the backend imports (or pyproject's backend extra names) that the
    Dockerfile's pip installs do not name."""
    image = dockerfile_parse.read(dockerfile, ROOT)
    inline, req_files, _ = dockerfile_parse.pip_requirements(image)
    named = [*inline]
    for f in req_files:
        named += [ln for ln in f.read_text().splitlines() if ln.strip() and ln[0] != "#"]
    installed = {generator.requirement_name(r) for r in named}
    wanted = set(generator.distributions(generator.scan(ROOT).third_party).values())
    wanted |= {generator.requirement_name(r) for r in generator.backend_extra(ROOT)}
    return wanted - installed


def missing_core_modules(dockerfile: str, generator: ModuleType) -> set[str]:
    """Core modules the backend imports (transitively) that are not at /app/<their path>."""
    image = dockerfile_parse.read(dockerfile, ROOT)
    missing = set()
    for module in generator.scan(ROOT).core_modules:
        source = generator._module_file(ROOT, module)
        in_image = PurePosixPath("/app") / source.relative_to(ROOT).as_posix()
        if image.files.get(in_image) != source:
            missing.add(module)
    return missing


def test_the_scan_sees_nested_lazy_and_migration_imports(generator: ModuleType) -> None:
    """The walk reaches function-level imports, backend/operator and backend/migrations."""
    found = generator.scan(ROOT)
    assert {"jinja2", "alembic", "argon2", "pyotp", "fastapi", "sqlalchemy"} <= found.third_party
    assert {"core.sync.wire", "core.sync.status_report"} <= found.core_modules
    assert not {"os", "backend", "core", "__future__"} & found.third_party


def test_dockerfile_installs_what_the_backend_imports(generator: ModuleType) -> None:
    assert missing_distributions(DOCKERFILE.read_text(), generator) == set()


def test_dockerfile_copies_every_core_module_the_backend_imports(generator: ModuleType) -> None:
    assert missing_core_modules(DOCKERFILE.read_text(), generator) == set()


def test_installs_are_constrained_by_the_lock_and_pinned_as_in_it(generator: ModuleType) -> None:
    image = dockerfile_parse.read(DOCKERFILE.read_text(), ROOT)
    inline, req_files, constraints = dockerfile_parse.pip_requirements(image)
    assert constraints == [ROOT / "requirements" / "lock.txt"]
    lock = generator.locked(ROOT)
    for f in req_files:
        for line in f.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name = generator.requirement_name(line)
                assert line.split("==")[1] == lock[name].split("==")[1], line
    for r in inline:
        assert "==" in r, f"unpinned inline requirement {r!r}"


def test_generated_requirements_file_is_up_to_date(generator: ModuleType) -> None:
    """Regenerate with `python deploy/backend_requirements.py` when this fails."""
    assert (ROOT / "deploy" / "backend-requirements.txt").read_text() == generator.generate(ROOT)


def test_the_checks_catch_the_image_that_could_not_start(generator: ModuleType) -> None:
    """The Dockerfile as it was before the review: a hand list of packages, no status_report."""
    current = DOCKERFILE.read_text()
    old = re.sub(
        r"RUN pip install[^\n]*",
        "RUN pip install --no-cache-dir -c requirements/lock.txt \\\n"
        "        fastapi uvicorn SQLAlchemy pydantic PyJWT tuf securesystemslib cryptography"
        ' boto3 \\\n        prometheus_client scipy numpy "psycopg[binary]" httpx',
        current,
    ).replace(" core/sync/status_report.py", "")
    assert old != current
    assert {"alembic", "jinja2", "argon2-cffi", "pyotp"} <= missing_distributions(old, generator)
    assert missing_core_modules(old, generator) == {"core.sync.status_report"}


def test_the_image_has_what_the_entrypoint_and_health_check_use() -> None:
    image = dockerfile_parse.read(DOCKERFILE.read_text(), ROOT)
    assert image.source_of("/app/deploy/entrypoint.py") == ROOT / "deploy" / "entrypoint.py"
    assert "/app/deploy/entrypoint.py" in image.entrypoint
    (healthcheck,) = [
        a for op, a in dockerfile_parse.instructions(DOCKERFILE.read_text()) if op == "HEALTHCHECK"
    ]
    assert "/healthz" in healthcheck  # liveness only; /readyz is fleet-wide (test_health.py)
    assert "/readyz" not in healthcheck
