#!/bin/sh
# Wheels for one service, pinned by uv.lock (third-party wheels hash-checked), and its install into a venv.
#
#   docker/wheelhouse.sh host PACKAGE OUT      on the host (network): OUT/PACKAGE/requirements.txt (hashed, from
#                                              uv export), OUT/PACKAGE/workspace.txt, wheels in OUT/wheels/ for
#                                              CPython 3.11 manylinux x86_64, workspace packages built by uv build
#   docker/wheelhouse.sh install PACKAGE VENV  in a Dockerfile: install from ./wheelhouse when it has PACKAGE
#                                              (offline, works with docker build --network none), else make the
#                                              wheelhouse from PyPI first (an ordinary build with a registry)
set -eu
MODE=${1:?usage: wheelhouse.sh host|install PACKAGE OUT|VENV}
PKG=${2:?package}
DEST=${3:?destination}

make_wheelhouse() {  # out uv pip [platform flags...]
  out=$1; uv=$2; pip=$3; shift 3
  mkdir -p "$out/$PKG" "$out/wheels"
  "$uv" export --frozen --no-dev --package "$PKG" --no-emit-workspace --no-header --quiet \
    -o "$out/$PKG/requirements.txt"
  # shellcheck disable=SC2086
  $pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: "$@" \
    -d "$out/wheels" -r "$out/$PKG/requirements.txt"
  : > "$out/$PKG/workspace.txt"
  for member in $("$uv" export --frozen --no-dev --package "$PKG" --no-hashes --no-header --quiet | sed -n 's/^-e \.\///p'); do
    "$uv" build --quiet --wheel --out-dir "$out/$PKG/app" "$member"
  done
  for wheel in "$out/$PKG"/app/*.whl; do
    mv "$wheel" "$out/wheels/"
    basename "$wheel" >> "$out/$PKG/workspace.txt"
  done
  rm -rf "$out/$PKG/app"
}

case "$MODE" in
  host)
    # a pip to download with: $PIP, else python3's, else one run by uvx (a venv's python3 may lack pip)
    if [ -z "${PIP:-}" ]; then
      if python3 -m pip --version >/dev/null 2>&1; then PIP="python3 -m pip"; else PIP="uvx --quiet pip"; fi
    fi
    make_wheelhouse "$DEST" uv "$PIP" --python-version 3.11 --implementation cp \
      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
      --platform any
    ;;
  install)
    house=wheelhouse
    if [ ! -f "$house/$PKG/requirements.txt" ]; then
      echo "no wheelhouse for $PKG in the build context: making it from the package index" >&2
      python3 -m venv /tmp/uv-venv
      /tmp/uv-venv/bin/pip install --quiet --disable-pip-version-check uv
      house=/tmp/wheelhouse
      make_wheelhouse "$house" /tmp/uv-venv/bin/uv "/tmp/uv-venv/bin/pip"
    fi
    python3 -m venv "$DEST"
    "$DEST/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir --no-index --require-hashes \
      --find-links "$house/wheels" -r "$house/$PKG/requirements.txt"
    # shellcheck disable=SC2046
    "$DEST/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir --no-index --no-deps \
      $(sed "s|^|$house/wheels/|" "$house/$PKG/workspace.txt")
    # pip itself is not needed at run time
    "$DEST/bin/pip" uninstall --quiet --yes pip >/dev/null 2>&1 || true
    rm -rf /tmp/uv-venv /tmp/wheelhouse
    ;;
  *) echo "usage: wheelhouse.sh host|install PACKAGE OUT|VENV" >&2; exit 2 ;;
esac
