// Which operating system this library was compiled for.
//
// Decided by the compiler's target macros, never by environment variables: an
// Android build is the one whose compiler defines __ANDROID__, an iOS build the
// one where Apple's TargetConditionals.h sets TARGET_OS_IPHONE (which covers the
// simulator too). Everything else is a "host" build (the developer's laptop, CI,
// desktop apps).
#pragma once

#if defined(__APPLE__)
#include <TargetConditionals.h>
#endif

namespace dala {

enum class Platform { Android, Ios, Host };

constexpr Platform compiled_platform() noexcept {
#if defined(__ANDROID__)
  return Platform::Android;
#elif defined(TARGET_OS_IPHONE) && TARGET_OS_IPHONE
  return Platform::Ios;
#else
  return Platform::Host;
#endif
}

const char* platform_name(Platform p) noexcept;

}  // namespace dala
