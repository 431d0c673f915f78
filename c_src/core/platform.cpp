#include "platform.h"

namespace dala {

const char* platform_name(Platform p) noexcept {
  switch (p) {
    case Platform::Android:
      return "android";
    case Platform::Ios:
      return "ios";
    case Platform::Host:
      return "host";
  }
  return "host";
}

}  // namespace dala
