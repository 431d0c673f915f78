#include "node_name.h"

#include <cstdint>
#include <cstdio>
#include <stdexcept>

#include "utf8.h"

namespace dala {
namespace {

bool is_name_byte(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

std::string hex_byte(unsigned char b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", static_cast<unsigned>(b));
  return buf;
}

std::string code_point(std::uint32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
  return buf;
}

[[noreturn]] void fail(std::string_view arg, const std::string& what) {
  throw std::invalid_argument(std::string(arg) + " " + what);
}

}  // namespace

std::string sanitize_suffix(std::string_view suffix) {
  std::string out(suffix);
  for (char& c : out) {
    if (!is_name_byte(c)) c = '_';
  }
  return out;
}

std::size_t node_length_chars(std::string_view node) noexcept {
  if (!utf8::is_valid(node)) return node.size();
  std::size_t chars = 0;
  for (char c : node) {
    // Count every byte that does not continue a sequence.
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++chars;
  }
  return chars;
}

void validate_node(std::string_view node, std::string_view arg) {
  if (node.empty()) fail(arg, "must not be empty");
  const std::size_t chars = node_length_chars(node);
  if (chars > kMaxNodeChars) {
    fail(arg, "must be at most " + std::to_string(kMaxNodeChars) + " characters, got " +
                  std::to_string(chars));
  }

  const std::size_t at = node.find('@');
  const std::string_view name = node.substr(0, at);
  if (name.empty()) fail(arg, "name part must not be empty");
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!is_name_byte(name[i])) {
      fail(arg, "name part must match [A-Za-z0-9_-]+, got invalid byte " +
                    hex_byte(static_cast<unsigned char>(name[i])) + " at position " +
                    std::to_string(i));
    }
  }
  if (at == std::string_view::npos) return;

  const std::size_t second = node.find('@', at + 1);
  if (second != std::string_view::npos) {
    fail(arg, "must contain at most one '@', got another at position " + std::to_string(second));
  }
  if (at + 1 == node.size()) fail(arg, "host must not be empty");

  // net_kernel checks the host's characters, so decode them the way the atom
  // will be made (see the header).
  const bool valid_utf8 = utf8::is_valid(node);
  std::uint32_t cp;
  std::size_t len = 1;
  for (std::size_t i = at + 1; i < node.size(); i += len) {
    if (valid_utf8) {
      utf8::decode(node, i, &cp, &len);
    } else {
      cp = static_cast<unsigned char>(node[i]);
      len = 1;
    }
    if (cp < 0x21 || cp > 0xFF) {
      fail(arg, "host must contain only characters U+0021..U+00FF, got " + code_point(cp) +
                    " at position " + std::to_string(i));
    }
  }
}

std::string apply_suffix(std::string_view base, std::string_view suffix) {
  validate_node(base, "base_node");
  const std::string_view trimmed = trim_ascii_whitespace(suffix);
  if (trimmed.empty()) return std::string(base);

  // The sanitised suffix is ASCII, one character per byte of `trimmed`; check
  // the length before building anything so a huge suffix costs nothing more.
  const std::size_t chars = node_length_chars(base) + 1 + trimmed.size();
  if (chars > kMaxNodeChars) {
    throw std::invalid_argument("suffix is too long: " + std::to_string(trimmed.size()) +
                                " bytes after trimming would make the node " +
                                std::to_string(chars) + " characters, at most " +
                                std::to_string(kMaxNodeChars) + " allowed");
  }

  const std::size_t at = base.find('@');
  const std::string_view name = base.substr(0, at);
  std::string out;
  out.reserve(base.size() + 1 + trimmed.size());
  out.append(name);
  out.push_back('_');
  out.append(sanitize_suffix(trimmed));
  if (at != std::string_view::npos) out.append(base.substr(at));
  return out;
}

}  // namespace dala
