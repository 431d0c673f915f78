// ASCII whitespace, as both the cookie secret and the device suffix are trimmed of it.
#pragma once

#include <cstddef>
#include <string_view>

namespace dala {

// Space, \t, \n, \v, \f and \r: what C's isspace() accepts in the "C" locale, without the locale.
constexpr bool is_ascii_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// `s` without ASCII whitespace at either end.
constexpr std::string_view trim_ascii_whitespace(std::string_view s) noexcept {
  std::size_t begin = 0;
  std::size_t end = s.size();
  while (begin < end && is_ascii_space(s[begin])) ++begin;
  while (end > begin && is_ascii_space(s[end - 1])) --end;
  return s.substr(begin, end - begin);
}

}  // namespace dala
