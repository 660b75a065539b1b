#!/bin/sh
# Wheels for one service, pinned by uv.lock (third-party wheels hash-checked), and its install into a venv.
#
#   docker/wheelhouse.sh host PACKAGE OUT      on the host (network): OUT/PACKAGE/requirements.txt (hashed, from
#                                              uv export), third-party wheels in OUT/wheels/ for CPython 3.11
#                                              manylinux x86_64, the workspace packages built by uv build in
#                                              OUT/PACKAGE/app/ (listed in OUT/PACKAGE/workspace.txt)
#   In a Dockerfile, from the repository root as context, three steps so that a source change leaves the
#   third-party layer cached:
#   docker/wheelhouse.sh split PACKAGE DEPS APP   from the whole context: DEPS gets only what the third-party install
#                                              reads (the lock file and the pyprojects, or the wheelhouse's locked
#                                              wheels), APP the workspace packages (their wheels, or their sources)
#   docker/wheelhouse.sh deps PACKAGE VENV     in a copy of DEPS: install the locked third-party wheels from the
#                                              wheelhouse when it has PACKAGE (offline, works with docker build
#                                              --network none), else download them from the package index first
#   docker/wheelhouse.sh app PACKAGE VENV      in DEPS + APP: install the workspace packages, without dependencies
set -eu
MODE=${1:?usage: wheelhouse.sh host|split|deps|app PACKAGE ...}
PKG=${2:?package}
DEST=${3:?destination}
UV_VENV=/tmp/uv-venv  # deps makes it in an ordinary build, app uses it: both run in the same build stage

export_requirements() {  # uv out
  "$1" export --frozen --no-dev --package "$PKG" --no-emit-workspace --no-header --quiet -o "$2"
}

workspace_members() {  # uv: the workspace directories PACKAGE needs (libs/common, services/<dir>)
  "$1" export --frozen --no-dev --package "$PKG" --no-hashes --no-header --quiet | sed -n 's/^-e \.\///p'
}

download() {  # pip requirements out [platform flags...]
  pip=$1; requirements=$2; out=$3; shift 3
  # shellcheck disable=SC2086
  $pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: "$@" -d "$out" -r "$requirements"
}

pip_install() {  # venv pip arguments...
  venv=$1; shift
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir --no-index "$@"
}

case "$MODE" in
  host)
    # a pip to download with: $PIP, else python3's, else one run by uvx (a venv's python3 may lack pip)
    if [ -z "${PIP:-}" ]; then
      if python3 -m pip --version >/dev/null 2>&1; then PIP="python3 -m pip"; else PIP="uvx --quiet pip"; fi
    fi
    mkdir -p "$DEST/$PKG" "$DEST/wheels"
    export_requirements uv "$DEST/$PKG/requirements.txt"
    download "$PIP" "$DEST/$PKG/requirements.txt" "$DEST/wheels" --python-version 3.11 --implementation cp \
      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
      --platform any
    rm -rf "$DEST/$PKG/app"
    for member in $(workspace_members uv); do
      uv build --quiet --wheel --out-dir "$DEST/$PKG/app" "$member"
    done
    (cd "$DEST/$PKG/app" && ls ./*.whl | sed 's|^\./||') > "$DEST/$PKG/workspace.txt"
    ;;
  split)
    APP=${4:?app directory}
    mkdir -p "$DEST/docker" "$APP"
    cp docker/wheelhouse.sh "$DEST/docker/"
    if [ -f "wheelhouse/$PKG/requirements.txt" ]; then
      # only the wheels the requirements pin by hash: other packages' wheels in the same wheelhouse stay out
      mkdir -p "$DEST/wheelhouse/$PKG" "$DEST/wheelhouse/wheels" "$APP/wheelhouse/$PKG"
      cp "wheelhouse/$PKG/requirements.txt" "$DEST/wheelhouse/$PKG/"
      sed -n 's/.*--hash=sha256:\([0-9a-f]*\).*/\1/p' "wheelhouse/$PKG/requirements.txt" | sort -u > /tmp/pinned
      for wheel in wheelhouse/wheels/*.whl; do
        if grep -qx "$(sha256sum "$wheel" | cut -d' ' -f1)" /tmp/pinned; then cp "$wheel" "$DEST/wheelhouse/wheels/"; fi
      done
      rm -f /tmp/pinned
      cp -R "wheelhouse/$PKG/workspace.txt" "wheelhouse/$PKG/app" "$APP/wheelhouse/$PKG/"
    else
      # every member's pyproject: uv reads the whole workspace to export one package's requirements
      find . -name pyproject.toml -not -path './wheelhouse/*' | while read -r file; do
        mkdir -p "$DEST/$(dirname "$file")" && cp "$file" "$DEST/$file"
      done
      cp uv.lock "$DEST/"
      cp -R pyproject.toml uv.lock README.md libs services "$APP/"
    fi
    ;;
  deps)
    house=wheelhouse
    if [ ! -f "$house/$PKG/requirements.txt" ]; then
      echo "no wheelhouse for $PKG in the build context: downloading the locked wheels from the package index" >&2
      python3 -m venv "$UV_VENV"
      "$UV_VENV/bin/pip" install --quiet --disable-pip-version-check uv
      house=/tmp/wheelhouse
      mkdir -p "$house/$PKG"
      export_requirements "$UV_VENV/bin/uv" "$house/$PKG/requirements.txt"
      download "$UV_VENV/bin/pip" "$house/$PKG/requirements.txt" "$house/wheels"
    fi
    python3 -m venv "$DEST"
    pip_install "$DEST" --require-hashes --find-links "$house/wheels" -r "$house/$PKG/requirements.txt"
    rm -rf /tmp/wheelhouse
    ;;
  app)
    if [ -f "wheelhouse/$PKG/workspace.txt" ]; then
      app="wheelhouse/$PKG/app"
    else
      app=/tmp/app
      for member in $(workspace_members "$UV_VENV/bin/uv"); do
        "$UV_VENV/bin/uv" build --quiet --wheel --out-dir "$app" "$member"
      done
    fi
    # shellcheck disable=SC2046
    pip_install "$DEST" --no-deps $(ls "$app"/*.whl)
    # pip itself is not needed at run time
    "$DEST/bin/pip" uninstall --quiet --yes pip >/dev/null 2>&1 || true
    rm -rf "$UV_VENV" /tmp/app
    ;;
  *) echo "usage: wheelhouse.sh host|split|deps|app PACKAGE ..." >&2; exit 2 ;;
esac
