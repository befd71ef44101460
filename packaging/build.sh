#!/usr/bin/env bash
# Build the Linux release: one-folder bundle, .tar.gz, .deb, CycloneDX SBOM, SHA256SUMS and
# minisign-format signatures. Run from the repository root (`make package` does).
#
# Environment:
#   DOCTORAI_FLAVOUR=cpu|gpu            (default cpu: no CUDA libraries in the bundle)
#   DOCTORAI_SIGNING_KEY=/path/key.pem   Ed25519 PKCS#8 key; never commit it. Unset: the build
#   DOCTORAI_SIGNING_KEY_PASSPHRASE=...  still writes SHA256SUMS but says UNSIGNED.
#   DOCTORAI_DEB_COMPRESSION=gzip|xz|zstd (default gzip: fast on small build machines)
#   DOCTORAI_SKIP_PYINSTALLER=1          reuse an existing dist/<flavour>/doctorai
#   DOCTORAI_XGBOOST_CPU_WHEEL=/path.whl  (cpu) the xgboost-cpu wheel; default: pip download it
#                                        (hash-pinned in packaging/cpu-flavour-wheels.txt)
# Outputs: dist/<flavour>/doctorai/ (bundle), dist/release/ (artefacts), build/package-*.txt
# (timings, sizes).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
FLAVOUR=${DOCTORAI_FLAVOUR:-cpu}
case "$FLAVOUR" in cpu|gpu) ;; *) echo "DOCTORAI_FLAVOUR must be cpu or gpu" >&2; exit 2;; esac
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' core/__init__.py)
ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
BUNDLE=dist/$FLAVOUR/doctorai
WORK=build/pyinstaller-$FLAVOUR
REL=dist/release
STEM=doctorai-$VERSION-linux-$(uname -m)-$FLAVOUR
TIMINGS=build/package-timings-$FLAVOUR.txt
mkdir -p build "$REL"
: > "$TIMINGS"

step() {  # step NAME CMD...: run and record wall time
    local name=$1; shift
    local t0=$SECONDS
    echo "== $name"
    "$@"
    echo "$name $((SECONDS - t0)) s" | tee -a "$TIMINGS"
}

if [ "$FLAVOUR" = cpu ] && [ -z "${DOCTORAI_XGBOOST_CPU_WHEEL:-}" ] \
        && [ "${DOCTORAI_SKIP_PYINSTALLER:-0}" != 1 ]; then
    # The CPU-only build of xgboost (see packaging/cpu-flavour-wheels.txt), hash-checked.
    step wheels "$PY" -m pip download --quiet --no-deps --only-binary :all: --require-hashes \
        -r packaging/cpu-flavour-wheels.txt -d build/wheels
    XGB=$("$PY" -c 'import importlib.metadata as m; print(m.version("xgboost"))')
    DOCTORAI_XGBOOST_CPU_WHEEL=$(ls build/wheels/xgboost_cpu-"$XGB"-*.whl 2>/dev/null | head -1)
    [ -n "$DOCTORAI_XGBOOST_CPU_WHEEL" ] || { echo "no xgboost-cpu $XGB wheel in build/wheels:" \
        "update packaging/cpu-flavour-wheels.txt" >&2; exit 1; }
    export DOCTORAI_XGBOOST_CPU_WHEEL
fi
if [ "${DOCTORAI_SKIP_PYINSTALLER:-0}" != 1 ]; then
    step pyinstaller env DOCTORAI_FLAVOUR="$FLAVOUR" "$PY" -m PyInstaller --noconfirm \
        --log-level WARN --workpath "$WORK" --distpath "dist/$FLAVOUR" packaging/doctorai.spec
fi
test -x "$BUNDLE/doctorai" || { echo "no bundle at $BUNDLE" >&2; exit 1; }

if [ "$FLAVOUR" = cpu ]; then
    cuda=$(find "$BUNDLE" \( -name 'libcu*' -o -name 'libnvidia*' -o -name 'libnccl*' \
        -o -name 'libcudnn*' -o -name 'libnvrtc*' -o -path '*/nvidia/*' \) -print)
    if [ -n "$cuda" ]; then
        echo "CPU bundle contains CUDA libraries:" >&2; echo "$cuda" >&2; exit 1
    fi
    # CUDA device code linked into an otherwise CPU library (xgboost's PyPI wheel does this).
    fatbin=$(find "$BUNDLE" -type f -name '*.so*' -exec readelf -SW {} + 2>/dev/null \
        | awk '/^File: /{f=$2} /\.nv_fatbin/{print f}' | sort -u)
    if [ -n "$fatbin" ]; then
        echo "CPU bundle contains CUDA device code (.nv_fatbin):" >&2; echo "$fatbin" >&2; exit 1
    fi
    echo "CPU bundle: no libcu*/libnvidia*/libnccl*/libcudnn* files, no .nv_fatbin sections"
fi

rm -f "$REL"/*
step tar.gz tar -C "dist/$FLAVOUR" -czf "$REL/$STEM.tar.gz" doctorai
step deb "$PY" packaging/deb.py --bundle "$BUNDLE" --out "$REL" --version "$VERSION" \
    --arch "$ARCH" --compression "${DOCTORAI_DEB_COMPRESSION:-gzip}"
step sbom "$PY" packaging/sbom.py --python "$PY" --bundled "$WORK/doctorai/bundled-top-level.txt" \
    --out "$REL/$STEM-sbom.cdx.json" --flavour "$FLAVOUR"

mapfile -t ARTEFACTS < <(find "$REL" -maxdepth 1 -type f \( -name '*.deb' -o -name '*.tar.gz' \
    -o -name '*.cdx.json' \) | sort)
if [ -n "${DOCTORAI_SIGNING_KEY:-}" ]; then
    step sign "$PY" packaging/release_signing.py sign "$REL" "${ARTEFACTS[@]}"
else
    (cd "$REL" && sha256sum -- "${ARTEFACTS[@]##*/}" > SHA256SUMS)
    echo "UNSIGNED: set DOCTORAI_SIGNING_KEY (and _PASSPHRASE) to sign; wrote $REL/SHA256SUMS only"
fi

"$PY" packaging/sizes.py "$BUNDLE" | tee "build/package-sizes-$FLAVOUR.txt"
echo "artefacts:"
ls -l "$REL" | tee -a "build/package-sizes-$FLAVOUR.txt"
du -sh "$BUNDLE" | tee -a "build/package-sizes-$FLAVOUR.txt"
