// Strict UTF-8, the one decoder of the core (cookie app names, node names).
//
// Strict like the VM's utf8 atom decoding: no overlong forms, no UTF-16 surrogates, nothing
// above U+10FFFF, no stray continuation bytes, no truncated sequences.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dala::utf8 {

// Decodes the sequence that starts at s[i] (i < s.size()). On success stores its code point
// and byte length and returns true; on an invalid or truncated sequence returns false and
// leaves *cp and *len alone.
inline bool decode(std::string_view s, std::size_t i, std::uint32_t* cp,
                   std::size_t* len) noexcept {
  const auto b0 = static_cast<unsigned char>(s[i]);
  std::size_t n;
  std::uint32_t min;
  std::uint32_t value;
  if (b0 < 0x80) {
    *cp = b0;
    *len = 1;
    return true;
  } else if ((b0 & 0xE0) == 0xC0) {
    n = 2, min = 0x80, value = b0 & 0x1Fu;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3, min = 0x800, value = b0 & 0x0Fu;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4, min = 0x10000, value = b0 & 0x07u;
  } else {
    return false;
  }
  if (s.size() - i < n) return false;
  for (std::size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return false;
    value = (value << 6) | (b & 0x3Fu);
  }
  if (value < min || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return false;
  *cp = value;
  *len = n;
  return true;
}

// True when every byte of `s` belongs to a valid sequence (the empty string is valid).
inline bool is_valid(std::string_view s) noexcept {
  std::uint32_t cp;
  std::size_t len;
  for (std::size_t i = 0; i < s.size(); i += len) {
    if (!decode(s, i, &cp, &len)) return false;
  }
  return true;
}

}  // namespace dala::utf8
