#!/bin/sh
# rebar3's compile pre_hook: the build `mix compile` does, under rebar3's _build (REBAR_BUILD_DIR,
# i.e. _build/<profile> of the project being built, also when dala is a dependency). The CMake
# build directory is $REBAR_BUILD_DIR/native/<target>-release; the NIF is installed into
# $REBAR_BUILD_DIR/lib/dala/priv/ (or checkouts/dala/priv/ for a _checkouts/dala; a cross
# target into priv/<target>/), never into a source
# checkout of dala. Same environment as the Mix compiler: DALA_CMAKE_TOOLCHAIN_FILE,
# DALA_CMAKE_ARGS (word-split by the shell), DALA_TARGET, DALA_JOBS.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${REBAR_BUILD_DIR:-$SRC/_build/default}
if ! command -v cmake >/dev/null 2>&1; then
  echo "dala: missing cmake: the NIF is built with CMake 3.20+ (Debian: apt-get install cmake; Homebrew: brew install cmake)" >&2
  exit 1
fi
TARGET=host
TOOLCHAIN_ARG=
if [ -n "${DALA_CMAKE_TOOLCHAIN_FILE:-}" ]; then
  TOOLCHAIN_ARG="-DCMAKE_TOOLCHAIN_FILE=$DALA_CMAKE_TOOLCHAIN_FILE"
  TARGET=${DALA_TARGET:-cross-$(printf '%s %s' "$DALA_CMAKE_TOOLCHAIN_FILE" "${DALA_CMAKE_ARGS:-}" | cksum | cut -d' ' -f1)}
fi
DIR="$BUILD/native/$TARGET-release"
# Where rebar3 puts the built app: _build/<profile>/lib/dala, or for a _checkouts/dala of the
# project, _build/<profile>/checkouts/dala.
APP="$BUILD/lib/dala"
if [ -n "${REBAR_CHECKOUTS_DIR:-}" ] && [ -d "$REBAR_CHECKOUTS_DIR/dala" ] &&
   [ "$(cd "$REBAR_CHECKOUTS_DIR/dala" && pwd -P)" = "$(cd "$SRC" && pwd -P)" ]; then
  APP="${REBAR_CHECKOUTS_OUT_DIR:-$BUILD/checkouts}/dala"
fi
PRIV="$APP/priv"
[ "$TARGET" = host ] || PRIV="$PRIV/$TARGET"
log="$DIR.log"
mkdir -p "$DIR"
# shellcheck disable=SC2086
if ! cmake -S "$SRC" -B "$DIR" -DDALA_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release -DDALA_STRIP=ON \
     -DDALA_PRIV_DIR="$DIR/out" $TOOLCHAIN_ARG ${DALA_CMAKE_ARGS:-} >"$log" 2>&1; then
  # One line for a missing tool (CMake wraps and indents the message), else the whole log.
  msg=$(sed -n '/dala: missing/,/^$/p' "$log" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')
  rm -f "$DIR/CMakeCache.txt"  # its findings (a compiler NOTFOUND) would outlive the fix
  if [ -n "$msg" ]; then echo "$msg" >&2; else cat "$log" >&2; fi
  exit 1
fi
cmake --build "$DIR" --parallel "${DALA_JOBS:-2}" >>"$log" 2>&1 || { cat "$log" >&2; exit 1; }
# rebar3 links lib/dala/priv to the source's priv/ (even a missing one): a directory of its own.
APP_PRIV="$APP/priv"
[ -L "$APP_PRIV" ] && rm -f "$APP_PRIV"
mkdir -p "$PRIV"
for f in "$DIR"/out/dala_dist_nif.so "$DIR"/out/dala_dist_nif.a; do
  if [ -f "$f" ] && ! cmp -s "$f" "$PRIV/$(basename "$f")"; then
    cp "$f" "$PRIV/$(basename "$f").tmp" && mv "$PRIV/$(basename "$f").tmp" "$PRIV/$(basename "$f")"
  fi
done
