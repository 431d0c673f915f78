#!/bin/bash
# The demo's phone launcher for the arm64 proof (DALA_DEMO_PHONE_LAUNCHER=cross/arm64_phone.sh):
# runs the phone's command (`elixir -pa <dala ebin> phone_app.exs ...`) on the arm64 BEAM of
# cross/setup.sh under qemu-user, with dala's arm64 build instead of the laptop's:
#   DALA_ARM64_ROOT   the private root of cross/setup.sh (its sysroot/)
#   DALA_ARM64_EBIN   the ebin of dala built for arm64 (its ../priv holds the arm64 NIF)
#   DALA_PHONE_LOG    (optional) a file that gets which VM binary the phone runs
# exec keeps the PID the demo registered with its reaper.
set -euo pipefail
SYSROOT="${DALA_ARM64_ROOT:?}/sysroot"
ERL_BIN="$SYSROOT/usr/lib/erlang/bin"
export PATH="$ERL_BIN:$PATH"
export LD_LIBRARY_PATH="$SYSROOT/lib/aarch64-linux-gnu:$SYSROOT/usr/lib/aarch64-linux-gnu"
# OTP 25's arm64 JIT crashes under qemu 7.2 with dual-mapped JIT memory: single-mapped instead.
export ERL_ZFLAGS="+JPperf map ${ERL_ZFLAGS:-}"
args=()
while [ $# -gt 0 ]; do
  if [ "$1" = "-pa" ] && [ $# -gt 1 ] && [[ "$2" == */lib/dala/ebin ]]; then
    args+=(-pa "${DALA_ARM64_EBIN:?}")
    shift 2
  else
    args+=("$1")
    shift
  fi
done
if [ -n "${DALA_PHONE_LOG:-}" ]; then
  beam=$(ls "$SYSROOT"/usr/lib/erlang/erts-*/bin/beam.smp)
  nif="${DALA_ARM64_EBIN}/../priv/dala_dist_nif.so"
  {
    echo "phone erl: $(command -v erl)"
    echo "phone VM: $beam: $(readelf -h "$beam" | sed -n 's/ *Machine: *//p')"
    echo "phone NIF: $nif: $(readelf -h "$nif" | sed -n 's/ *Machine: *//p')"
  } >>"$DALA_PHONE_LOG"
fi
exec "${args[@]}"
