#include <catch2/catch.hpp>
#include <string>

#include "platform.h"

TEST_CASE("a build on this machine is a host build", "[platform]") {
#if defined(__linux__) && !defined(__ANDROID__)
  REQUIRE(dala::compiled_platform() == dala::Platform::Host);
#endif
  REQUIRE(std::string(dala::platform_name(dala::compiled_platform())) == "host");
}

TEST_CASE("every platform has its atom name", "[platform]") {
  REQUIRE(std::string(dala::platform_name(dala::Platform::Android)) == "android");
  REQUIRE(std::string(dala::platform_name(dala::Platform::Ios)) == "ios");
  REQUIRE(std::string(dala::platform_name(dala::Platform::Host)) == "host");
}
