#!/usr/bin/env bash
# End-to-end packaging test (slow: builds the bundle; not part of `make test`).
#   1. a throw-away signing key (never the release key), then `packaging/build.sh`
#   2. packaging/verify accepts every artefact, and refuses a tampered copy of the .deb
#   3. installs the .deb into a temporary root with dpkg (maintainer scripts included)
#   4. runs the installed bundle offscreen: `doctorai --selftest` with the shipped conffile as
#      machine config, once per framework in the zoo, on a shared DICOM file
#   5. renders one shared DICOM file per transfer syntax with the installed bundle and with the
#      development tree, and requires identical pixels (the decoders made it into the bundle)
#   6. extracts the .tar.gz and runs it; removes/purges the package and checks profiles survive
# Environment: DOCTORAI_SKIP_PYINSTALLER=1 reuses dist/cpu/doctorai; DOCTORAI_SHARED_DATA points
# at the shared data (default ../shared/data). Exit 0 only when every step passed.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PY:-.venv/bin/python}
FLAVOUR=${DOCTORAI_FLAVOUR:-cpu}
SHARED=${DOCTORAI_SHARED_DATA:-$REPO/../shared/data}
T=$(mktemp -d "${TMPDIR:-/tmp}/doctorai-ci.XXXXXX")
trap 'rm -rf "$T"' EXIT
REL=dist/release
START=$SECONDS
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "PASS: $*"; }

echo "== 1. throw-away key and build"
export DOCTORAI_SIGNING_KEY=$T/throwaway.pem
export DOCTORAI_SIGNING_KEY_PASSPHRASE
DOCTORAI_SIGNING_KEY_PASSPHRASE=$("$PY" -c 'import secrets; print(secrets.token_hex(16))')
"$PY" packaging/release_signing.py keygen --secret "$T/throwaway.pem" --public "$T/throwaway.pub"
BUILD_START=$SECONDS
PY=$PY packaging/build.sh
BUILD_SECONDS=$((SECONDS - BUILD_START))
DEB=$(ls "$REL"/*.deb)
TGZ=$(ls "$REL"/*.tar.gz)

echo "== 2. signatures"
packaging/verify --pubkey "$T/throwaway.pub" "$REL"/*.deb "$REL"/*.tar.gz "$REL"/*.cdx.json \
    || fail "verify refused an untouched artefact"
pass "every artefact verifies against the throw-away public key"
mkdir "$T/tampered"
cp "$REL"/SHA256SUMS* "$DEB.minisig" "$T/tampered/"
cp "$DEB" "$T/tampered/"
"$PY" -c 'import sys  # flip one bit in the middle of the package
with open(sys.argv[1], "r+b") as f:
    f.seek(f.seek(0, 2) // 2); b = f.read(1); f.seek(-1, 1); f.write(bytes([b[0] ^ 1]))' \
    "$T/tampered/$(basename "$DEB")"
set +e
packaging/verify --pubkey "$T/throwaway.pub" "$T/tampered/$(basename "$DEB")" 2> "$T/refusal.txt"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "verify accepted a tampered .deb (exit $rc)"
grep -q "REFUSED" "$T/refusal.txt" || fail "no clear refusal message"
pass "tampered .deb refused: $(head -c 200 "$T/refusal.txt")"

echo "== 3. install the .deb into a temporary root"
if command -v apt-get > /dev/null; then  # do the Depends resolve on this distribution?
    apt-get install -s "$REPO/$DEB" > "$T/apt-sim.txt" 2>&1 \
        || { tail -20 "$T/apt-sim.txt"; fail "apt-get cannot resolve the .deb's dependencies"; }
    pass "apt-get install -s ./$(basename "$DEB"): dependencies resolve ($(grep -c '^Inst ' \
        "$T/apt-sim.txt") packages would be installed)"
fi
ROOT=$T/root
mkdir -p "$ROOT/var/lib/dpkg/info" "$ROOT/var/lib/dpkg/updates" "$ROOT/home/alice/.local/share"
touch "$ROOT/var/lib/dpkg/status"
DPKG=(dpkg "--instdir=$ROOT" "--admindir=$ROOT/var/lib/dpkg" --log=/dev/null
      --force-script-chrootless --force-not-root --force-depends)
"${DPKG[@]}" -i "$DEB" > /dev/null 2> "$T/dpkg.err" || { cat "$T/dpkg.err"; fail "dpkg -i"; }
APP=$ROOT/opt/doctorai/doctorai
[ -x "$APP" ] && [ -f "$ROOT/etc/doctorai/config.toml" ] && [ -x "$ROOT/usr/bin/doctorai" ] \
    || fail "installed layout incomplete"
pass "installed into $ROOT"
CUDA_FILES=$(find "$ROOT/opt/doctorai" \( -name 'libcu*' -o -name 'libnvidia*' -o -name 'libnccl*' \
    -o -name 'libcudnn*' -o -name 'libnvrtc*' -o -name 'libnvJitLink*' -o -path '*/nvidia/*' \
    -o -path '*/triton/*' \) -print)
if [ "$FLAVOUR" = cpu ]; then
    [ -z "$CUDA_FILES" ] || { echo "$CUDA_FILES" | head; fail "CUDA libraries in the CPU package"; }
    # No bundled ELF may ask the dynamic linker for a CUDA library either.
    CUDA_NEEDED=$(find "$ROOT/opt/doctorai" -type f -name '*.so*' -exec readelf -d {} + 2>/dev/null \
        | grep -E 'NEEDED.*\[lib(cuda|cudart|cublas|cudnn|nccl|nvrtc|nvJitLink|cufft|curand|cusparse)' \
        | sort -u || true)
    [ -z "$CUDA_NEEDED" ] || { echo "$CUDA_NEEDED"; fail "a bundled library links against CUDA"; }
    # ... nor carry CUDA device code linked in (xgboost's PyPI wheel: 147 MiB of it).
    FATBIN=$(find "$ROOT/opt/doctorai" -type f -name '*.so*' -exec readelf -SW {} + 2>/dev/null \
        | awk '/^File: /{f=$2} /\.nv_fatbin/{print f}' | sort -u)
    [ -z "$FATBIN" ] || { echo "$FATBIN"; fail "CUDA device code (.nv_fatbin) in the CPU package"; }
    pass "CPU package: no CUDA library files, no NEEDED entry for a CUDA library, no .nv_fatbin"
fi
QT=$ROOT/opt/doctorai/_internal/PySide6
# Qt plugins: only the categories the workstation uses (see KEEP_PLUGINS in doctorai.spec).
EXTRA_PLUGINS=$(cd "$QT/Qt/plugins" && find . -type f | grep -vE '^\./(platforms/libq(xcb|offscreen|wayland)|imageformats/libqjpeg|xcbglintegrations/|platforminputcontexts/|platformthemes/libqxdgdesktopportal|wayland-[a-z-]+/|styles/)' || true)
[ -z "$EXTRA_PLUGINS" ] || { echo "$EXTRA_PLUGINS"; fail "unused Qt plugins in the bundle"; }
[ ! -e "$QT/Qt/translations" ] || fail "Qt translations bundled (the workstation loads none)"
# Every Qt library must be needed by some other bundled Qt binary (else it is dead weight).
for lib in "$QT"/Qt/lib/*.so*; do
    name=$(basename "$lib")
    find "$QT" -type f -name '*.so*' ! -path "$lib" -exec readelf -d {} + > "$T/needed.txt" 2>/dev/null \
        || true
    grep -qF "[$name]" "$T/needed.txt" || fail "Qt library $name is bundled but nothing links against it"
done
pass "Qt: $(find "$QT/Qt/plugins" -type f | wc -l) plugins, $(ls "$QT"/Qt/lib | wc -l) libraries, all used"

echo "== 4. --selftest offscreen, one model per framework"
export QT_QPA_PLATFORM=offscreen
export DOCTORAI_MACHINE_CONFIG=$ROOT/etc/doctorai/config.toml  # the shipped conffile
export DOCTORAI_HOME=$ROOT/home/alice/.local/share/DoctorAI
DICOM=$SHARED/dicom/plotly__dash-vtk/demos/data/mri_brain/1-01.dcm
[ -f "$DICOM" ] || DICOM=$ROOT/opt/doctorai/_internal/resources/sample/chest_cr/RG1_J2KI.dcm
for model in chest-xray-pneumonia brain-tumour-mri tabular-breast-cancer report-drafter; do
    [ -d "models/zoo/$model" ] || { echo "skip $model (not in the zoo)"; continue; }
    # The bundle must do what the development tree does: a model whose self-test already fails
    # there (a package still being trained/written) is reported, not blamed on packaging.
    if ! DOCTORAI_SELFTEST_MODEL=$model "$PY" -m desktop.launcher --selftest "$DICOM" \
        > "$T/dev-$model.json" 2> /dev/null; then
        echo "SKIP: $model fails its self-test in the development tree too: $("$PY" -c 'import json,sys
r=json.load(open(sys.argv[1])); print([c["error"][:120] for c in r["checks"] if not c["ok"]])' \
            "$T/dev-$model.json")"
        continue
    fi
    t0=$SECONDS
    if DOCTORAI_SELFTEST_MODEL=$model "$APP" --selftest "$DICOM" > "$T/selftest-$model.json" \
        2> "$T/selftest-$model.err"; then
        pass "selftest $model ($((SECONDS - t0)) s): $("$PY" -c 'import json,sys
r=json.load(open(sys.argv[1])); m=[c for c in r["checks"] if c["name"]=="model"][0]["detail"]
print(m["framework"], m["device"], m["stored_sample"][:60], m.get("dicom_prediction", ""))' \
            "$T/selftest-$model.json")"
    else
        cat "$T/selftest-$model.json" "$T/selftest-$model.err" | tail -40
        fail "selftest with model $model"
    fi
done
cp "$T/selftest-chest-xray-pneumonia.json" build/ci-selftest.json 2>/dev/null || true

echo "== 5. decoders: bundle renders == development tree renders"
mapfile -t FILES < <("$PY" - "$SHARED/dicom" <<'EOF'
import csv, sys
from pathlib import Path
root = Path(sys.argv[1]); seen = set()
if (root / "MANIFEST.csv").is_file():
    for r in csv.DictReader(open(root / "MANIFEST.csv")):
        p = root / r["repo"].replace("/", "__") / r["path"]
        if r["decode"] == "ok" and r["ts"] not in seen and int(r["size"] or 0) < 3_000_000 \
                and p.is_file():
            seen.add(r["ts"]); print(p)
EOF
)
if [ "${#FILES[@]}" -eq 0 ]; then  # no shared data (e.g. a GitHub runner): the repo's samples
    echo "no $SHARED/dicom/MANIFEST.csv: comparing the repository's sample DICOM files instead"
    mapfile -t FILES < <(find resources/sample -name '*.dcm' | sort | head -5)
fi
[ "${#FILES[@]}" -gt 0 ] || fail "no DICOM files to render"
n=0
for f in "${FILES[@]}"; do
    "$APP" render "$f" --out "$T/bundle.png" > /dev/null 2> "$T/render.err" \
        || { cat "$T/render.err"; fail "bundle cannot render '$f'"; }
    "$PY" -m desktop.launcher render "$f" --out "$T/dev.png" > /dev/null
    "$PY" -c 'import sys, numpy as np; from PIL import Image
a, b = (np.asarray(Image.open(p)) for p in sys.argv[1:3])
sys.exit(0 if a.shape == b.shape and (a == b).all() else 1)' "$T/bundle.png" "$T/dev.png" \
        || fail "bundle and dev tree render '$f' differently"
    n=$((n + 1))
done
pass "$n transfer syntaxes render identically in the bundle"

echo "== 6. tarball, remove and purge"
mkdir "$T/tar" && tar -C "$T/tar" -xzf "$TGZ"
"$T/tar/doctorai/doctorai" --version | grep -q doctorai || fail "tarball --version"
"$T/tar/doctorai/doctorai" models list > /dev/null || fail "tarball models list"
pass "tarball runs ($("$T/tar/doctorai/doctorai" --version))"
[ -d "$DOCTORAI_HOME" ] || mkdir -p "$DOCTORAI_HOME"
echo marker > "$DOCTORAI_HOME/audit-marker"
"${DPKG[@]}" -r doctorai > /dev/null 2>&1 || fail "dpkg -r"
[ ! -e "$APP" ] && [ -f "$ROOT/etc/doctorai/config.toml" ] && [ -f "$DOCTORAI_HOME/audit-marker" ] \
    || fail "dpkg -r must remove the program and keep config and profiles"
"${DPKG[@]}" --purge doctorai > /dev/null 2>&1 || fail "dpkg --purge"
[ ! -e "$ROOT/etc/doctorai" ] && [ -f "$DOCTORAI_HOME/audit-marker" ] \
    || fail "purge must remove /etc/doctorai and keep profiles"
pass "remove keeps config+profile; purge removes config, keeps profile"

echo "== summary"
echo "build (packaging/build.sh) ${BUILD_SECONDS} s; whole test $((SECONDS - START)) s"
cat "build/package-timings-$FLAVOUR.txt"
ls -l "$REL"
echo "ALL PASSED"
