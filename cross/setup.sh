#!/bin/bash
# Prepares this machine (Debian 12, amd64, root) for the arm64 proof of `make cross-test`:
#   1. the aarch64 cross toolchain, qemu-user and the arm64 multiarch libraries (libsodium,
#      libstdc++, libc) through apt, once;
#   2. Debian's arm64 Erlang (erlang-base, erlang-crypto and the libraries they need), downloaded
#      with `apt-get download` and unpacked with `dpkg-deb -x` into a private root ($1), never
#      installed over the host's Erlang (apt would remove elixir and rebar3);
#   3. qemu-aarch64 registered with binfmt_misc, so the arm64 VM can exec its helper programs
#      (erl_child_setup, epmd) - there is no systemd here to do it.
# Safe to re-run: every step is skipped when its result is there.
set -euo pipefail
ROOT=${1:?usage: cross/setup.sh <private-root-dir>}
mkdir -p "$ROOT"
ROOT=$(cd "$ROOT" && pwd)

# 1. apt: toolchain, emulator, arm64 libraries.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
fi
APT_PKGS="g++-aarch64-linux-gnu qemu-user libsodium-dev:arm64 libstdc++6:arm64 pkgconf:arm64"
missing=""
for p in $APT_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "cross/setup: installing:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# 2. The arm64 Erlang, unpacked into $ROOT/sysroot.
SYSROOT="$ROOT/sysroot"
if [ ! -x "$SYSROOT/usr/lib/erlang/bin/erl" ] || [ ! -f "$SYSROOT/usr/lib/erlang/usr/include/erl_nif.h" ]; then
  DEBS="$ROOT/debs"
  mkdir -p "$DEBS"
  ERL_PKGS="erlang-base erlang-crypto erlang-dev libtinfo6 zlib1g libssl3 libsystemd0 libcap2 libgcrypt20 \
            libgpg-error0 liblz4-1 liblzma5 libzstd1 libsctp1"
  # apt's sandbox user must be able to write the download directory.
  chown _apt "$DEBS" 2>/dev/null || true
  download() {
    (cd "$DEBS" && for p in $ERL_PKGS; do
       ls ${p}_*_arm64.deb >/dev/null 2>&1 || apt-get download -qq "$p:arm64" || return 1
     done)
  }
  download || { apt-get update -qq && download; }
  rm -rf "$SYSROOT.tmp" "$SYSROOT"
  mkdir -p "$SYSROOT.tmp"
  for d in "$DEBS"/*.deb; do dpkg-deb -x "$d" "$SYSROOT.tmp"; done
  # Debian's erl scripts hard-code ROOTDIR=/usr/lib/erlang: unpatched, every `erl` they start
  # would run the host's amd64 VM.
  for f in "$SYSROOT.tmp"/usr/lib/erlang/bin/erl "$SYSROOT.tmp"/usr/lib/erlang/erts-*/bin/erl \
           "$SYSROOT.tmp"/usr/lib/erlang/bin/start "$SYSROOT.tmp"/usr/lib/erlang/erts-*/bin/start; do
    [ -f "$f" ] && sed -i "s|ROOTDIR=\"\?/usr/lib/erlang\"\?|ROOTDIR=\"$SYSROOT/usr/lib/erlang\"|" "$f"
  done
  mv "$SYSROOT.tmp" "$SYSROOT"
fi

# 3. binfmt_misc: exec of an aarch64 ELF runs it under qemu-aarch64, with the multiarch libs
# (plain qemu-aarch64, no -L: the cross package's loader with the multiarch libc spins forever).
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
  mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
  printf ':qemu-aarch64:M::%s:%s:%s:F\n' "$magic" "$mask" "$(command -v qemu-aarch64)" \
    > /proc/sys/fs/binfmt_misc/register
fi
echo "cross/setup: ready (arm64 Erlang in $SYSROOT)"
