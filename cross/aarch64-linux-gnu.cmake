# CMake toolchain for the arm64 proof on a Debian amd64 machine (cross/setup.sh installs what it
# uses): Debian's aarch64 cross compiler, the arm64 multiarch libraries (libsodium-dev:arm64),
# and qemu-aarch64 to run test programs. An aarch64 Linux target stands in for a phone here: the
# code is plain POSIX + libsodium. On Android use the NDK's android.toolchain.cmake instead, on
# iOS CMAKE_SYSTEM_NAME=iOS (see the README).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Plain qemu-aarch64 with the multiarch libraries (not -L /usr/aarch64-linux-gnu: that loader with
# the multiarch libc spins at the first thread creation).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)

set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
# Catch2 2 is header-only: the host's package config serves any target.
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config of the target: only the arm64 multiarch .pc files (never the host's libsodium).
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
