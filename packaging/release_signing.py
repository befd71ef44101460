"""Release signing: SHA256SUMS plus minisign-format Ed25519 signatures, in pure Python.

Why this shape: hospital IT must be able to check an installer before rolling it out, on any
platform, with a tool they trust. The signatures use minisign's file format (Ed25519 over the
BLAKE2b-512 of the file, plus a signed "trusted comment"), so Debian's ``minisign -Vm FILE -p
KEY.pub`` verifies them as well as our ``packaging/verify``. The format is a few fixed-size
fields, written here on top of the ``cryptography`` package's Ed25519 (deliberately our own code:
minisign has no Python binding, and its secret-key format needs scrypt plus a custom cipher).

The secret key is a PKCS#8 PEM file (passphrase-encrypted when a passphrase is given). It is
never committed: the build reads its path from ``DOCTORAI_SIGNING_KEY`` and the passphrase from
``DOCTORAI_SIGNING_KEY_PASSPHRASE``. The key id is derived from the public key, so the PEM file
alone is enough to sign.

Command line (used by ``packaging/build.sh`` and CI)::

    python packaging/release_signing.py keygen --secret KEY.pem --public KEY.pub
    python packaging/release_signing.py sign DIST_DIR ARTEFACT...   # SHA256SUMS + *.minisig
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SUMS_NAME = "SHA256SUMS"
SIG_SUFFIX = ".minisig"
KEY_ENV = "DOCTORAI_SIGNING_KEY"
PASSPHRASE_ENV = "DOCTORAI_SIGNING_KEY_PASSPHRASE"
_ALG_PREHASHED = b"ED"  # Ed25519 over BLAKE2b-512(file): minisign's default since 0.8
_ALG_LEGACY = b"Ed"  # Ed25519 over the whole file (older minisign); accepted when verifying
_CHUNK = 1 << 20


class VerificationError(Exception):
    """An artefact, its signature, SHA256SUMS or the public key is missing, malformed or wrong."""


@dataclass(frozen=True)
class PublicKey:
    key_id: bytes  # 8 bytes, as minisign stores it
    key: Ed25519PublicKey

    @property
    def key_id_hex(self) -> str:
        return self.key_id[::-1].hex().upper()  # minisign prints the little-endian number


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_for(key: Ed25519PublicKey) -> bytes:
    """The 8-byte key id, derived from the public key so that the PEM file alone can sign."""
    return hashlib.blake2b(_raw_public(key), digest_size=8).digest()


def _blake2b_file(path: Path) -> bytes:
    h = hashlib.blake2b(digest_size=64)
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.digest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# --- keys -------------------------------------------------------------------------------------


def generate_keypair(secret: Path, public: Path, passphrase: bytes | None = None) -> PublicKey:
    """Write a new secret key (PEM, mode 0600) and its minisign-format public key."""
    private = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub = PublicKey(key_id_for(private.public_key()), private.public_key())
    public.write_text(format_public_key(pub))
    return pub


def format_public_key(pub: PublicKey) -> str:
    blob = base64.b64encode(b"Ed" + pub.key_id + _raw_public(pub.key)).decode()
    return f"untrusted comment: minisign public key {pub.key_id_hex}\n{blob}\n"


def load_secret_key(path: Path, passphrase: bytes | None) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=passphrase)
    except OSError as exc:
        raise VerificationError(f"cannot read signing key '{path}': {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise VerificationError(
            f"cannot load signing key '{path}' (wrong passphrase?): {exc}"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise VerificationError(f"signing key '{path}' is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> PublicKey:
    """Read a minisign public key file (comment line + base64 line), or the bare base64 line."""
    try:
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise VerificationError(f"cannot read public key '{path}': {exc.strerror}") from exc
    lines = [ln for ln in lines if not ln.startswith("untrusted comment:")]
    try:
        raw = base64.b64decode(lines[0], validate=True) if lines else b""
    except ValueError as exc:
        raise VerificationError(f"public key '{path}' is not valid base64") from exc
    if len(raw) != 42 or raw[:2] != b"Ed":
        raise VerificationError(f"public key '{path}' is not a minisign Ed25519 public key")
    return PublicKey(raw[2:10], Ed25519PublicKey.from_public_bytes(raw[10:]))


# --- signing ----------------------------------------------------------------------------------


def sign_file(path: Path, key: Ed25519PrivateKey) -> Path:
    """Write ``PATH.minisig`` next to ``path`` (minisign format, prehashed) and return it."""
    key_id = key_id_for(key.public_key())
    signature = key.sign(_blake2b_file(path))
    trusted = f"timestamp:{int(time.time())}\tfile:{path.name}\thashed"
    global_sig = key.sign(signature + trusted.encode())
    out = path.with_name(path.name + SIG_SUFFIX)
    out.write_text(
        "untrusted comment: signature from DoctorAI release key\n"
        f"{base64.b64encode(_ALG_PREHASHED + key_id + signature).decode()}\n"
        f"trusted comment: {trusted}\n"
        f"{base64.b64encode(global_sig).decode()}\n"
    )
    return out


def write_sums(directory: Path, artefacts: Sequence[Path]) -> Path:
    """SHA256SUMS in ``sha256sum`` format (so ``sha256sum -c SHA256SUMS`` works too)."""
    lines = [f"{sha256_file(a)}  {a.name}\n" for a in sorted(artefacts, key=lambda p: p.name)]
    out = directory / SUMS_NAME
    out.write_text("".join(lines))
    return out


def sign_release(directory: Path, artefacts: Sequence[Path], key: Ed25519PrivateKey) -> list[Path]:
    """SHA256SUMS over ``artefacts`` and a detached signature for each of them and for the sums."""
    for a in artefacts:
        if a.parent.resolve() != directory.resolve():
            raise VerificationError(f"artefact '{a}' is not in the release folder '{directory}'")
    sums = write_sums(directory, artefacts)
    return [sign_file(p, key) for p in [*artefacts, sums]]


# --- verifying --------------------------------------------------------------------------------


def verify_signature(path: Path, pub: PublicKey, signature: Path | None = None) -> str:
    """Check ``path`` against its minisign signature; return the trusted comment."""
    sig_path = signature or path.with_name(path.name + SIG_SUFFIX)
    try:
        lines = sig_path.read_text().splitlines()
    except OSError as exc:
        raise VerificationError(
            f"no signature for '{path}': cannot read '{sig_path}' ({exc.strerror})"
        ) from exc
    if len(lines) < 4 or not lines[2].startswith("trusted comment: "):
        raise VerificationError(f"signature file '{sig_path}' is malformed")
    try:
        blob = base64.b64decode(lines[1], validate=True)
        global_sig = base64.b64decode(lines[3], validate=True)
    except ValueError as exc:
        raise VerificationError(f"signature file '{sig_path}' is not valid base64") from exc
    if len(blob) != 74 or blob[:2] not in (_ALG_PREHASHED, _ALG_LEGACY):
        raise VerificationError(f"signature file '{sig_path}' is not an Ed25519 minisign signature")
    if blob[2:10] != pub.key_id:
        raise VerificationError(
            f"'{path}' was signed with key {blob[2:10][::-1].hex().upper()}, "
            f"not with the given public key {pub.key_id_hex}"
        )
    message = _blake2b_file(path) if blob[:2] == _ALG_PREHASHED else path.read_bytes()
    trusted = lines[2][len("trusted comment: ") :]
    try:
        pub.key.verify(blob[10:], message)
    except InvalidSignature:
        raise VerificationError(
            f"'{path}' does NOT match its signature '{sig_path.name}': the file was modified "
            "or the signature belongs to another file"
        ) from None
    try:
        pub.key.verify(global_sig, blob[10:] + trusted.encode())
    except InvalidSignature:
        raise VerificationError(f"the trusted comment in '{sig_path}' was modified") from None
    return trusted


def read_sums(sums: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    try:
        text = sums.read_text()
    except OSError as exc:
        raise VerificationError(f"cannot read '{sums}': {exc.strerror}") from exc
    for n, line in enumerate(text.splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise VerificationError(f"'{sums}' line {n} is not '<sha256>  <file name>'")
        entries[name.lstrip("*")] = digest.lower()
    return entries


def verify_artefact(path: Path, pub: PublicKey, sums: Path | None = None) -> str:
    """Full check: SHA256SUMS is signed by ``pub``, lists ``path`` with its hash, and ``path``'s
    own signature verifies. Returns a one-line summary; raises VerificationError otherwise."""
    if not path.is_file():
        raise VerificationError(f"artefact '{path}' does not exist")
    sums_path = sums or path.with_name(SUMS_NAME)
    verify_signature(sums_path, pub)
    expected = read_sums(sums_path).get(path.name)
    if expected is None:
        raise VerificationError(f"'{path.name}' is not listed in '{sums_path}'")
    actual = sha256_file(path)
    if actual != expected:
        raise VerificationError(
            f"'{path}' has SHA-256 {actual}, but '{sums_path.name}' says {expected}: "
            "the file was modified or damaged"
        )
    trusted = verify_signature(path, pub)
    return (
        f"'{path.name}' OK: SHA-256 {actual} listed in signed {sums_path.name}; "
        f"signature by key {pub.key_id_hex} valid ({trusted})"
    )


# --- command line -----------------------------------------------------------------------------


def _passphrase() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="DoctorAI release signing (minisign format)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    gen = sub.add_parser("keygen", help=f"new key pair (passphrase from ${PASSPHRASE_ENV})")
    gen.add_argument("--secret", type=Path, required=True)
    gen.add_argument("--public", type=Path, required=True)
    sign = sub.add_parser("sign", help=f"SHA256SUMS + signatures (key file from ${KEY_ENV})")
    sign.add_argument("directory", type=Path)
    sign.add_argument("artefacts", type=Path, nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "keygen":
            pub = generate_keypair(args.secret, args.public, _passphrase())
            print(f"key {pub.key_id_hex}: secret '{args.secret}', public '{args.public}'")
            return 0
        key_file = os.environ.get(KEY_ENV)
        if not key_file:
            print(
                f"error: set {KEY_ENV} to the signing key file (never commit it)", file=sys.stderr
            )
            return 2
        key = load_secret_key(Path(key_file), _passphrase())
        for out in sign_release(args.directory, args.artefacts, key):
            print(f"signed: {out}")
    except VerificationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
