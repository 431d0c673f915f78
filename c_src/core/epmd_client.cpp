#include "epmd_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <vector>

namespace dala::epmd {

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) reset(std::exchange(o.fd_, -1));
  return *this;
}

void Fd::reset(int fd) noexcept {
  if (fd_ >= 0) {
    // close() releases the descriptor even when it fails with EINTR on Linux; never retry.
    ::close(fd_);
  }
  fd_ = fd;
}

Endpoint make_endpoint(std::string_view ip, long port) {
  // inet_pton wants a NUL-terminated string; an IPv4 literal is at most 15 characters.
  if (ip.empty() || ip.size() > 15 || ip.find('\0') != std::string_view::npos) {
    throw std::invalid_argument("ip must be an IPv4 address literal such as \"127.0.0.1\"");
  }
  Endpoint ep;
  const std::string text(ip);
  if (inet_pton(AF_INET, text.c_str(), &ep.addr) != 1) {
    throw std::invalid_argument("ip must be an IPv4 address literal such as \"127.0.0.1\", got \"" +
                                text + "\"");
  }
  if (port < 1 || port > 65535) {
    throw std::invalid_argument("port must be an integer in 1..65535, got " + std::to_string(port));
  }
  ep.port = static_cast<uint16_t>(port);
  return ep;
}

const char* errno_reason(int err) noexcept {
  switch (err) {
    case ECONNREFUSED:
      return "econnrefused";
    case ECONNRESET:
      return "econnreset";
    case ECONNABORTED:
      return "econnaborted";
    case ETIMEDOUT:
      return "etimedout";
    case EHOSTUNREACH:
      return "ehostunreach";
    case ENETUNREACH:
      return "enetunreach";
    case ENETDOWN:
      return "enetdown";
    case EHOSTDOWN:
      return "ehostdown";
    case EADDRNOTAVAIL:
      return "eaddrnotavail";
    case EADDRINUSE:
      return "eaddrinuse";
    case EAFNOSUPPORT:
      return "eafnosupport";
    case EPIPE:
      return "epipe";
    case EACCES:
      return "eacces";
    case EPERM:
      return "eperm";
    case EMFILE:
      return "emfile";
    case ENFILE:
      return "enfile";
    case ENOBUFS:
      return "enobufs";
    case ENOMEM:
      return "enomem";
    case EAGAIN:
      return "eagain";
    case EINTR:
      return "eintr";
    case EINVAL:
      return "einval";
    case EBADF:
      return "ebadf";
    case ENOTCONN:
      return "enotconn";
    case ENOTSOCK:
      return "enotsock";
    case EPROTO:
      return "eproto";
    case EIO:
      return "eio";
    default:
      return "unknown";
  }
}

IoLimits limits_after(std::chrono::milliseconds timeout, int cancel_fd) {
  return IoLimits{Clock::now() + timeout, cancel_fd};
}

namespace {

enum class Wait { Ready, Timeout, Cancelled, Failed };

// Waits until `fd` has one of `events`, the deadline passes or the cancel fd is readable.
// On Failed, *err holds errno.
Wait wait_for(int fd, short events, const IoLimits& limits, int* err) {
  for (;;) {
    const auto left = limits.deadline - Clock::now();
    if (left <= Clock::duration::zero()) return Wait::Timeout;
    // Round up, so we never wake a little early and spin on a zero timeout.
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    pollfd fds[2] = {{fd, events, 0}, {limits.cancel_fd, POLLIN, 0}};
    const nfds_t n = limits.cancel_fd >= 0 ? 2 : 1;
    const int rc = ::poll(fds, n, ms > 1000000 ? 1000000 : static_cast<int>(ms));
    if (rc < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return Wait::Failed;
    }
    if (n == 2 && (fds[1].revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) != 0) {
      return Wait::Cancelled;
    }
    // Errors and hang-ups count as ready: the following call reports them.
    if (rc > 0 && fds[0].revents != 0) return Wait::Ready;
  }
}

bool cancelled(const IoLimits& limits) {
  if (limits.cancel_fd < 0) return false;
  pollfd p{limits.cancel_fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) != 0;
}

template <typename T>
Outcome<T> fail(const char* reason) {
  Outcome<T> o;
  o.status = Status::Error;
  o.reason = reason;
  return o;
}

template <typename T>
Outcome<T> from_wait(Wait w, int err) {
  if (w == Wait::Cancelled) {
    Outcome<T> o;
    o.status = Status::Cancelled;
    o.reason = "cancelled";
    return o;
  }
  return fail<T>(w == Wait::Timeout ? "timeout" : errno_reason(err));
}

Fd open_socket(int* err) {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) *err = errno;
#else
  Fd fd(::socket(AF_INET, SOCK_STREAM, 0));
  if (!fd.valid()) {
    *err = errno;
    return fd;
  }
  if (::fcntl(fd.get(), F_SETFD, FD_CLOEXEC) < 0 ||
      ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK) < 0) {
    *err = errno;
    fd.reset();
    return fd;
  }
#endif
#if defined(SO_NOSIGPIPE)
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  return fd;
}

#if defined(MSG_NOSIGNAL)
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;
#endif

// A reply reader as the exchange sees it: `feed` takes each chunk as it arrives and says whether
// the reply is complete, still open or bad; `eof` gives the verdict when the peer closes.
// Readers parse incrementally, so a long reply costs time linear in its size.
//
// Connects, sends `request` and reads until the reader says the reply is complete (for NAMES
// that needs EOF). The deadline and the cancel fd are checked after every read, not only when
// the socket would block, so a peer that keeps sending cannot hold the request past them.
template <typename Reader>
Outcome<bool> exchange(const Endpoint& ep, const std::vector<uint8_t>& request,
                       const IoLimits& limits, Reader& reader) {
  if (cancelled(limits)) return from_wait<bool>(Wait::Cancelled, 0);
  if (Clock::now() >= limits.deadline) return fail<bool>("timeout");

  int err = 0;
  Fd sock = open_socket(&err);
  if (!sock.valid()) return fail<bool>(errno_reason(err));

  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(ep.port);
  sa.sin_addr = ep.addr;
  int rc;
  do {
    rc = ::connect(sock.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    if (errno != EINPROGRESS) return fail<bool>(errno_reason(errno));
    const Wait w = wait_for(sock.get(), POLLOUT, limits, &err);
    if (w != Wait::Ready) return from_wait<bool>(w, err);
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (::getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &so_error, &len) < 0) {
      return fail<bool>(errno_reason(errno));
    }
    if (so_error != 0) return fail<bool>(errno_reason(so_error));
  }

  // Once connected, a reset or a broken pipe is the peer hanging up: "closed", as inet reports
  // it by default (gen_tcp's show_econnreset is false). A dead adb tunnel looks exactly like this.
  auto hung_up = [](int e) { return e == ECONNRESET || e == EPIPE || e == ENOTCONN; };

  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(sock.get(), request.data() + sent, request.size() - sent, kSendFlags);
    if (n >= 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return fail<bool>(hung_up(errno) ? "closed" : errno_reason(errno));
    }
    const Wait w = wait_for(sock.get(), POLLOUT, limits, &err);
    if (w != Wait::Ready) return from_wait<bool>(w, err);
  }

  uint8_t chunk[4096];
  for (;;) {
    const ssize_t n = ::recv(sock.get(), chunk, sizeof chunk, 0);
    if (n > 0) {
      const ParseStatus s = reader.feed(chunk, static_cast<size_t>(n));
      if (s == ParseStatus::Bad) return fail<bool>("bad_reply");
      if (s == ParseStatus::Complete) break;
      if (cancelled(limits)) return from_wait<bool>(Wait::Cancelled, 0);
      if (Clock::now() >= limits.deadline) return fail<bool>("timeout");
      continue;
    }
    if (n == 0) {
      const ParseStatus s = reader.eof();
      if (s == ParseStatus::Bad) return fail<bool>("bad_reply");
      if (s == ParseStatus::Incomplete) return fail<bool>("closed");
      break;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return fail<bool>(hung_up(errno) ? "closed" : errno_reason(errno));
    }
    const Wait w = wait_for(sock.get(), POLLIN, limits, &err);
    if (w != Wait::Ready) return from_wait<bool>(w, err);
  }
  Outcome<bool> o;
  o.status = Status::Ok;
  o.reason = "";
  o.value = true;
  return o;
}

// NAMES: the incremental parser.
struct NamesReader {
  NamesParser parser;
  ParseStatus feed(const uint8_t* d, size_t n) { return parser.feed(d, n); }
  ParseStatus eof() { return parser.finish(); }
};

// PORT2 and KILL replies are short and complete without EOF: keep the bytes (bounded) and
// parse them whole; `Parse` is parse_port2_resp or parse_kill_resp.
template <typename Result, Result (*Parse)(const uint8_t*, size_t)>
struct BufferReader {
  std::vector<uint8_t> bytes;
  Result result;
  ParseStatus feed(const uint8_t* d, size_t n) {
    if (n > kMaxReplyBytes - bytes.size()) return ParseStatus::Bad;
    bytes.insert(bytes.end(), d, d + n);
    result = Parse(bytes.data(), bytes.size());
    return result.status;
  }
  ParseStatus eof() {
    result = Parse(bytes.data(), bytes.size());
    return result.status;
  }
};

template <typename T, typename U>
Outcome<T> rewrap(const Outcome<U>& from) {
  Outcome<T> o;
  o.status = from.status;
  o.reason = from.reason;
  return o;
}

}  // namespace

Outcome<NamesReply> names(const Endpoint& ep, const IoLimits& limits) {
  NamesReader reader;
  const auto raw = exchange(ep, encode_names_req(), limits, reader);
  auto o = rewrap<NamesReply>(raw);
  if (raw.ok()) o.value = std::move(reader.parser.reply());
  return o;
}

Outcome<Port2Reply> port_please(const Endpoint& ep, std::string_view name, const IoLimits& limits) {
  BufferReader<Port2Result, parse_port2_resp> reader;
  const auto raw = exchange(ep, encode_port_please2_req(name), limits, reader);
  auto o = rewrap<Port2Reply>(raw);
  if (raw.ok()) o.value = std::move(reader.result.reply);
  return o;
}

Outcome<bool> kill(const Endpoint& ep, const IoLimits& limits) {
  BufferReader<KillResult, parse_kill_resp> reader;
  const auto raw = exchange(ep, encode_kill_req(), limits, reader);
  auto o = rewrap<bool>(raw);
  if (raw.ok()) o.value = reader.result.killed;
  return o;
}

}  // namespace dala::epmd
