# Sourced by the project's scripts: makes sure the build finds what it needs.
#
# The HDF5 library is built from source by the `hdf5-metno` crate (features "static", "zlib"),
# which needs CMake >= 3.26. When the cmake on PATH is missing or older, a private Python venv
# under $CCFM_CACHE gets CMake from PyPI and the build is pointed at it through $CMAKE.
# Nothing here needs root.

CCFM_CACHE="${CCFM_CACHE:-$HOME/.cache/ccfm}"
export CCFM_CACHE
mkdir -p "$CCFM_CACHE"

ccfm_cmake_ok() {
  # true when "$1" is a cmake >= 3.26
  local v
  v=$("$1" --version 2>/dev/null | head -n 1 | sed -n 's/^cmake version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  [ -n "$v" ] || return 1
  set -- $v
  [ "$1" -gt 3 ] || { [ "$1" -eq 3 ] && [ "$2" -ge 26 ]; }
}

ccfm_venv() {
  # The project's Python venv (CMake, and the Python tools used by tools/ and CI).
  if [ ! -x "$CCFM_CACHE/venv/bin/python" ]; then
    echo "[ccfm] creating Python venv in $CCFM_CACHE/venv" >&2
    python3 -m venv "$CCFM_CACHE/venv" >&2 || return 1
    "$CCFM_CACHE/venv/bin/python" -m pip install --quiet --upgrade pip >&2 || return 1
  fi
}

if [ -n "${CMAKE:-}" ] && ccfm_cmake_ok "$CMAKE"; then
  :
elif command -v cmake >/dev/null 2>&1 && ccfm_cmake_ok "$(command -v cmake)"; then
  CMAKE="$(command -v cmake)"
  export CMAKE
else
  if ! ccfm_cmake_ok "$CCFM_CACHE/venv/bin/cmake"; then
    echo "[ccfm] CMake >= 3.26 not found; installing it from PyPI into $CCFM_CACHE/venv" >&2
    ccfm_venv && "$CCFM_CACHE/venv/bin/python" -m pip install --quiet "cmake>=3.26" >&2 \
      || { echo "[ccfm] could not install cmake: install CMake >= 3.26 and set CMAKE=/path/to/cmake" >&2; return 1 2>/dev/null || exit 1; }
  fi
  CMAKE="$CCFM_CACHE/venv/bin/cmake"
  export CMAKE
fi
