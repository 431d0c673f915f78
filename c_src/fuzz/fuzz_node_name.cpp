// libFuzzer target: the node-name rules (validate_node, apply_suffix, sanitize_suffix,
// trim_ascii_whitespace, node_length_chars).
//
// The input is "<base>|<suffix>" split at the first '|' (no '|' at all: the whole input is the
// base and the suffix is empty); the whole input is also validated as a node on its own.
//
// Invariants:
//   - no crash, no out-of-bounds read, no UB; only std::invalid_argument is thrown, naming the
//     argument, with a short message (input is never echoed);
//   - apply_suffix's result always passes validate_node, is at most 255 characters and at most
//     |base| + 1 + |suffix| bytes, keeps the base's name as prefix and its "@host" as suffix;
//     a blank suffix returns the base unchanged;
//   - apply_suffix rejects a base exactly when validate_node rejects it;
//   - sanitize_suffix keeps the length and yields only [A-Za-z0-9_-];
//   - trim returns a sub-range of its input with no ASCII whitespace at either end;
//   - node_length_chars counts code points for valid UTF-8 (as utf8::is_valid judges it,
//     a second, independently written validator) and bytes otherwise.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "node_name.h"
#include "utf8.h"

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

bool is_name_byte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// true when valid; checks the message names `arg` otherwise.
bool valid_node(std::string_view node, std::string_view arg) {
  try {
    dala::validate_node(node, arg);
    return true;
  } catch (const std::invalid_argument& e) {
    dala::fuzz::check_message(e);
    FUZZ_CHECK(starts_with(e.what(), std::string(arg) + " "));
    return false;
  }
}

void check_valid_shape(std::string_view node) {
  FUZZ_CHECK(!node.empty());
  FUZZ_CHECK(dala::node_length_chars(node) <= dala::kMaxNodeChars);
  const size_t at = node.find('@');
  const std::string_view name = node.substr(0, at);
  FUZZ_CHECK(!name.empty());
  for (char c : name) FUZZ_CHECK(is_name_byte(c));
  if (at != std::string_view::npos) {
    FUZZ_CHECK(at + 1 < node.size());
    FUZZ_CHECK(node.find('@', at + 1) == std::string_view::npos);
  }
}

void check_trim(std::string_view s) {
  const std::string_view t = dala::trim_ascii_whitespace(s);
  FUZZ_CHECK(t.size() <= s.size());
  if (!t.empty()) {
    FUZZ_CHECK(t.data() >= s.data() && t.data() + t.size() <= s.data() + s.size());
    FUZZ_CHECK(!is_space(t.front()) && !is_space(t.back()));
  }
  FUZZ_CHECK(dala::trim_ascii_whitespace(t) == t);
}

void check_length(std::string_view s) {
  size_t chars = s.size();
  if (dala::utf8::is_valid(s)) {
    chars = 0;
    for (char c : s) chars += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }
  FUZZ_CHECK(dala::node_length_chars(s) == chars);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto [base, suffix] = dala::fuzz::split_pair(input);

  check_trim(input);
  check_length(input);
  if (valid_node(input, "node")) check_valid_shape(input);

  const std::string sanitized = dala::sanitize_suffix(input);
  FUZZ_CHECK(sanitized.size() == size);
  for (size_t i = 0; i < size; ++i) {
    FUZZ_CHECK(is_name_byte(sanitized[i]));
    if (is_name_byte(input[i])) FUZZ_CHECK(sanitized[i] == input[i]);
  }

  const bool base_ok = valid_node(base, "base_node");
  try {
    const std::string out = dala::apply_suffix(base, suffix);
    FUZZ_CHECK(base_ok);
    FUZZ_CHECK(valid_node(out, "node"));
    check_valid_shape(out);
    FUZZ_CHECK(out.size() <= base.size() + 1 + suffix.size());
    if (dala::trim_ascii_whitespace(suffix).empty()) {
      FUZZ_CHECK(out == base);
    } else {
      const size_t at = base.find('@');
      const std::string_view name = base.substr(0, at);
      const std::string_view host = at == std::string_view::npos ? "" : base.substr(at);
      FUZZ_CHECK(starts_with(out, std::string(name) + "_"));
      FUZZ_CHECK(out.size() > host.size() &&
                 std::string_view(out).substr(out.size() - host.size()) == host);
    }
  } catch (const std::invalid_argument& e) {
    dala::fuzz::check_message(e);
    const std::string_view msg = e.what();
    if (base_ok) {
      // Only the length can go wrong with a valid base: the suffix is sanitised.
      FUZZ_CHECK(starts_with(msg, "suffix is too long"));
      const size_t chars =
          dala::node_length_chars(base) + 1 + dala::trim_ascii_whitespace(suffix).size();
      FUZZ_CHECK(chars > dala::kMaxNodeChars);
    } else {
      FUZZ_CHECK(starts_with(msg, "base_node "));
    }
  }
  return 0;
}
