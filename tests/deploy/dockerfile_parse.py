"""Read deploy/Dockerfile as Docker does (instructions, line continuations, COPY sources and
destinations, pip install arguments), so tests check what the image would contain rather than
whether a string appears somewhere in the file. No docker daemon is needed."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath


@dataclass
class Image:
    """What the instructions put in the image: files by their in-image path, and pip's work."""

    workdir: PurePosixPath = field(default_factory=lambda: PurePosixPath("/"))
    files: dict[PurePosixPath, Path] = field(default_factory=dict)  # in-image path -> source
    added: set[PurePosixPath] = field(default_factory=set)  # ADD <url> destinations
    pip_args: list[list[str]] = field(default_factory=list)  # one list per `pip install`
    run_lines: list[str] = field(default_factory=list)
    entrypoint: str = ""

    def source_of(self, path: str) -> Path | None:
        """The repository file that lands at ``path`` (relative paths are from WORKDIR)."""
        p = PurePosixPath(path)
        return self.files.get(p if p.is_absolute() else self.workdir / p)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs; comments dropped, backslash continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        if whole:
            op, _, rest = whole.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def _copy(image: Image, root: Path, args: list[str]) -> None:
    args = [a for a in args if not a.startswith("--")]
    *sources, dest = args
    dest_path = PurePosixPath(dest)
    if not dest_path.is_absolute():
        dest_path = image.workdir / dest_path
    into_dir = dest.endswith("/") or len(sources) > 1
    for src in sources:
        local = root / src
        if local.is_dir():
            for f in sorted(local.rglob("*")):
                if f.is_file():
                    image.files[dest_path / f.relative_to(local).as_posix()] = f
        else:
            image.files[dest_path / local.name if into_dir else dest_path] = local


def read(dockerfile: str, root: Path) -> Image:
    """The image the Dockerfile text builds from the repository at ``root`` (context = root)."""
    image = Image()
    for op, rest in instructions(dockerfile):
        if op == "WORKDIR":
            image.workdir = PurePosixPath(rest)
        elif op == "COPY":
            _copy(image, root, shlex.split(rest))
        elif op == "ADD":
            args = [a for a in shlex.split(rest) if not a.startswith("--")]
            image.added.add(PurePosixPath(args[-1]))
        elif op == "RUN":
            image.run_lines.append(rest)
            for part in rest.split("&&"):
                words = shlex.split(part)
                if words[:2] == ["pip", "install"]:
                    image.pip_args.append(words[2:])
        elif op == "ENTRYPOINT":
            image.entrypoint = rest
    return image


def pip_requirements(image: Image) -> tuple[list[str], list[Path], list[Path]]:
    """(requirement strings named inline, -r files, -c files) of every pip install, the files
    resolved to the repository files COPYed to those paths (a path not copied raises)."""
    inline: list[str] = []
    req_files: list[Path] = []
    constraints: list[Path] = []
    for args in image.pip_args:
        it = iter(args)
        for arg in it:
            if arg in ("-r", "--requirement", "-c", "--constraint"):
                path = next(it)
                source = image.source_of(path)
                if source is None:
                    raise FileNotFoundError(f"pip reads {path!r}, which no COPY puts there")
                (req_files if arg in ("-r", "--requirement") else constraints).append(source)
            elif not arg.startswith("-"):
                inline.append(arg)
    return inline, req_files, constraints
