// Node names: the device suffix and the rules a node name must follow.
//
// A node name is "name" or "name@host". The rules are the ones net_kernel
// (OTP 25, create_name/3) applies when distribution starts, checked up front
// so a bad name is an ArgumentError naming the problem rather than a
// `:nodistribution` later:
//   - name part: one or more of [A-Za-z0-9_-] (valid_name_head/1);
//   - host part, when there is an '@': non-empty, every character in
//     U+0021..U+00FF (validate_hostname/1 matches "^[!-ÿ]*$" against the
//     characters of the atom, not its UTF-8 bytes), and no second '@'
//     (OTP tolerates one in the host; we do not, since it is never meant);
//   - the whole name at most 255 characters, the atom table's limit.
//
// "Characters": the input is the atom's text as a binary. When it is valid
// UTF-8 (always the case for Atom.to_string/1), characters are code points, as
// for binary_to_atom(Bin, utf8). Otherwise each byte is one Latin-1 character,
// as for binary_to_atom(Bin, latin1); then "U+00XX" in a message is that byte.
//
// Errors are std::invalid_argument whose message names the argument and what is
// wrong, with positions (0-based byte offsets into the name) and sizes instead
// of the input itself, so a huge or hostile input is never echoed back.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "ascii.h"  // trim_ascii_whitespace, used on suffixes

namespace dala {

// The atom table's limit, in characters.
inline constexpr std::size_t kMaxNodeChars = 255;

// `suffix` with every byte outside [A-Za-z0-9_-] replaced by '_' (a multi-byte
// UTF-8 character becomes one '_' per byte). Does not trim.
std::string sanitize_suffix(std::string_view suffix);

// Length of `node` in characters (code points if valid UTF-8, else bytes).
std::size_t node_length_chars(std::string_view node) noexcept;

// Throws std::invalid_argument if `node` breaks a rule above; `arg` names the
// argument in the message ("node", "base_node").
void validate_node(std::string_view node, std::string_view arg = "node");

// `base` (validated as "base_node") with the trimmed, sanitised `suffix`
// inserted as "_<suffix>" before the '@', or appended when there is no '@'.
// An empty or whitespace-only suffix returns `base` unchanged. Throws
// std::invalid_argument naming `suffix` when the result would be too long.
std::string apply_suffix(std::string_view base, std::string_view suffix);

}  // namespace dala
