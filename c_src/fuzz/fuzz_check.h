// Shared by the libFuzzer targets: an invariant check that stays on in every build type (assert
// is compiled out under NDEBUG) and says which invariant broke before aborting, so libFuzzer
// records the input as a crash.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

namespace dala::fuzz {

// Argument errors never echo the input: a message stays short whatever the input's size.
// (The longest message of the core is a few dozen bytes plus a few numbers.)
inline constexpr std::size_t kMaxMessageBytes = 200;

inline void check_message(const std::invalid_argument& e) {
  const std::string msg = e.what();
  FUZZ_CHECK(!msg.empty());
  FUZZ_CHECK(msg.size() <= kMaxMessageBytes);
}

// Two-argument targets read their input as `<first>|<second>` (no bar: the second is empty).
inline std::pair<std::string_view, std::string_view> split_pair(std::string_view input) {
  const std::size_t bar = input.find('|');
  if (bar == std::string_view::npos) return {input, {}};
  return {input.substr(0, bar), input.substr(bar + 1)};
}

}  // namespace dala::fuzz
