// The gate and the client against real sockets on loopback, in process.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "epmd_client.h"
#include "gate.h"

using namespace dala::epmd;
using namespace std::chrono_literals;

namespace {

int64_t ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

Fd listen_socket(uint16_t port = 0) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd.valid());
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(port);
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  REQUIRE(::listen(fd.get(), 64) == 0);
  return fd;
}

uint16_t port_of(int fd) {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
  return ntohs(sa.sin_port);
}

// A port nothing listens on (bound, read, closed; nobody else on this machine takes it meanwhile
// in practice).
uint16_t free_port() {
  Fd fd = listen_socket();
  return port_of(fd.get());
}

// A listener on its own thread; `serve` gets each accepted socket and decides what to do.
class Listener {
 public:
  using Serve = std::function<void(Fd&)>;
  explicit Listener(Serve serve, uint16_t port = 0)
      : sock_(listen_socket(port)), port_(port_of(sock_.get())), serve_(std::move(serve)) {
    thread_ = std::thread([this] { run(); });
  }
  ~Listener() {
    stop_ = true;
    thread_.join();
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }

 private:
  void run() {
    while (!stop_) {
      pollfd p{sock_.get(), POLLIN, 0};
      if (::poll(&p, 1, 5) <= 0) continue;
      Fd conn(::accept(sock_.get(), nullptr, nullptr));
      if (!conn.valid()) continue;
      ++accepted_;
      serve_(conn);
      if (conn.valid()) kept_.push_back(std::move(conn));
    }
  }

  Fd sock_;
  uint16_t port_;
  Serve serve_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::vector<Fd> kept_;  // sockets a silent listener keeps open until it is destroyed
  std::thread thread_;
};

// Reads the request (its length prefix says how long it is) so the reply is not reset away.
void read_request(int fd) {
  uint8_t buf[512];
  size_t got = 0;
  size_t want = 2;
  while (got < want && got < sizeof buf) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) return;
    const ssize_t n = ::recv(fd, buf + got, sizeof buf - got, 0);
    if (n <= 0) return;
    got += static_cast<size_t>(n);
    if (got >= 2) want = 2 + ((size_t{buf[0]} << 8) | buf[1]);
  }
}

void send_all(int fd, const std::string& s) {
  size_t sent = 0;
  while (sent < s.size()) {
    const ssize_t n = ::send(fd, s.data() + sent, s.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
}

std::string names_reply(uint32_t port, const std::string& lines) {
  std::string s;
  for (int shift : {24, 16, 8, 0}) s += static_cast<char>((port >> shift) & 0xff);
  return s + lines;
}

Listener::Serve reply_with(std::string bytes) {
  return [bytes](Fd& conn) {
    read_request(conn.get());
    send_all(conn.get(), bytes);
    conn.reset();
  };
}

Endpoint loopback(uint16_t port) { return make_endpoint("127.0.0.1", port); }

int open_fds() {
  DIR* d = ::opendir("/proc/self/fd");
  REQUIRE(d != nullptr);
  int n = 0;
  while (::readdir(d) != nullptr) ++n;
  ::closedir(d);
  return n;
}

}  // namespace

TEST_CASE("IP literals are parsed, never resolved", "[epmd_client]") {
  REQUIRE(make_endpoint("127.0.0.1", 4369).port == 4369);
  for (const char* bad :
       {"localhost", "", "127.0.0.256", "::1", "127.1", "1.2.3.4.5", "example.com", "127.0.0.1 "}) {
    CAPTURE(bad);
    REQUIRE_THROWS_AS(make_endpoint(bad, 4369), std::invalid_argument);
  }
  REQUIRE_THROWS_WITH(
      make_endpoint("localhost", 1),
      "ip must be an IPv4 address literal such as \"127.0.0.1\", got \"localhost\"");
  REQUIRE_THROWS_WITH(make_endpoint("127.0.0.1", 0), "port must be an integer in 1..65535, got 0");
  REQUIRE_THROWS_WITH(make_endpoint("127.0.0.1", 65536),
                      "port must be an integer in 1..65535, got 65536");
}

TEST_CASE("errno values map to inet's reason names", "[epmd_client]") {
  REQUIRE(std::string(errno_reason(ECONNREFUSED)) == "econnrefused");
  REQUIRE(std::string(errno_reason(ECONNRESET)) == "econnreset");
  REQUIRE(std::string(errno_reason(EHOSTUNREACH)) == "ehostunreach");
  REQUIRE(std::string(errno_reason(EMFILE)) == "emfile");
}

TEST_CASE("names() against a peer that sends a valid reply", "[epmd_client]") {
  Listener l(reply_with(names_reply(4369, "name foo at port 40000\nname bar at port 40001\n")));
  const auto o = names(loopback(l.port()), limits_after(1000ms));
  REQUIRE(o.ok());
  REQUIRE(o.value.epmd_port == 4369);  // not the port we dialled, and that is fine
  REQUIRE(o.value.names == std::vector<NodeEntry>{{"foo", 40000}, {"bar", 40001}});
}

TEST_CASE("names() failures carry inet-style reasons", "[epmd_client]") {
  SECTION("nothing listening") {
    const auto o = names(loopback(free_port()), limits_after(1000ms));
    REQUIRE(o.status == Status::Error);
    REQUIRE(std::string(o.reason) == "econnrefused");
  }
  SECTION("accepted, then closed (a dead tunnel)") {
    Listener l([](Fd& conn) { conn.reset(); });
    const auto o = names(loopback(l.port()), limits_after(1000ms));
    REQUIRE(std::string(o.reason) == "closed");
  }
  SECTION("closed mid-reply") {
    Listener l(reply_with(names_reply(4369, "name foo at po")));
    const auto o = names(loopback(l.port()), limits_after(1000ms));
    REQUIRE(std::string(o.reason) == "closed");
  }
  SECTION("garbage") {
    Listener l(reply_with("HTTP/1.1 400 Bad Request\r\n\r\n"));
    const auto o = names(loopback(l.port()), limits_after(1000ms));
    REQUIRE(std::string(o.reason) == "bad_reply");
  }
  SECTION("never answers") {
    Listener l([](Fd&) {});
    const auto t0 = Clock::now();
    const auto o = names(loopback(l.port()), limits_after(200ms));
    const auto took = ms_between(t0, Clock::now());
    REQUIRE(std::string(o.reason) == "timeout");
    REQUIRE(took >= 190);
    REQUIRE(took < 400);
  }
}

TEST_CASE("port_please() and kill() parse what the peer says", "[epmd_client]") {
  SECTION("not registered") {
    Listener l(reply_with(std::string{char(kPort2Resp), 1}));
    const auto o = port_please(loopback(l.port()), "foo", limits_after(1000ms));
    REQUIRE(o.ok());
    REQUIRE_FALSE(o.value.registered);
  }
  SECTION("registered") {
    std::string r{char(kPort2Resp), 0, char(0x9c), char(0x40), 'M', 0, 0, 6, 0, 5, 0, 3};
    r += "foo";
    r += std::string(2, '\0');
    Listener l(reply_with(r));
    const auto o = port_please(loopback(l.port()), "foo", limits_after(1000ms));
    REQUIRE(o.ok());
    REQUIRE(o.value.registered);
    REQUIRE(o.value.port == 0x9c40);
  }
  SECTION("wrong opcode") {
    Listener l(reply_with(std::string{char(kNamesReq), 0}));
    const auto o = port_please(loopback(l.port()), "foo", limits_after(1000ms));
    REQUIRE(std::string(o.reason) == "bad_reply");
  }
  SECTION("kill") {
    Listener ok(reply_with("OK"));
    Listener no(reply_with("NO"));
    const auto a = kill(loopback(ok.port()), limits_after(1000ms));
    const auto b = kill(loopback(no.port()), limits_after(1000ms));
    REQUIRE(a.ok());
    REQUIRE(a.value);
    REQUIRE(b.ok());
    REQUIRE_FALSE(b.value);
  }
}

TEST_CASE("the gate is ready as soon as a peer answers NAMES", "[gate]") {
  Listener l(reply_with(names_reply(12345, "name foo at port 40000\n")));
  Gate gate;
  const auto r = gate.wait(loopback(l.port()), 2000ms);
  REQUIRE(r.kind == WaitResult::Kind::Ready);
  REQUIRE(r.attempts == 1);
  REQUIRE(r.names == std::vector<NodeEntry>{{"foo", 40000}});
  REQUIRE(r.epmd_port == 12345);
  REQUIRE(r.elapsed_ms < 1000);
}

TEST_CASE("nothing listening: econnrefused, and the deadline is kept", "[gate]") {
  Gate gate;
  const auto t0 = Clock::now();
  const auto r = gate.wait(loopback(free_port()), 300ms);
  const auto took = ms_between(t0, Clock::now());
  REQUIRE(r.kind == WaitResult::Kind::Timeout);
  REQUIRE(std::string(r.last_error) == "econnrefused");
  REQUIRE(r.attempts > 1);
  REQUIRE(took >= 300 - 50);
  REQUIRE(took <= 300 + 50);
  REQUIRE(r.elapsed_ms >= 250);
  REQUIRE(r.elapsed_ms <= 350);
}

TEST_CASE("a dead tunnel is never ready and ends at the deadline with closed", "[gate]") {
  Listener l([](Fd& conn) { conn.reset(); });
  Gate gate;
  const auto t0 = Clock::now();
  const auto r = gate.wait(loopback(l.port()), 300ms);
  const auto took = ms_between(t0, Clock::now());
  REQUIRE(r.kind == WaitResult::Kind::Timeout);
  REQUIRE(std::string(r.last_error) == "closed");
  REQUIRE(l.accepted() >= 2);
  REQUIRE(took >= 250);
  REQUIRE(took <= 350);
}

TEST_CASE("a silent peer cannot hold the wait past its deadline", "[gate]") {
  Listener l([](Fd&) {});
  Gate gate;
  const auto t0 = Clock::now();
  const auto r = gate.wait(loopback(l.port()), 300ms);
  const auto took = ms_between(t0, Clock::now());
  REQUIRE(r.kind == WaitResult::Kind::Timeout);
  REQUIRE(std::string(r.last_error) == "timeout");
  REQUIRE(took >= 250);
  REQUIRE(took <= 350);
}

TEST_CASE("a listener that appears during the wait is noticed soon after", "[gate]") {
  const uint16_t port = free_port();
  Gate gate;
  std::atomic<int64_t> listening_at_ms{-1};
  const auto t0 = Clock::now();
  std::unique_ptr<Listener> late;
  std::thread starter([&] {
    std::this_thread::sleep_for(150ms);
    late = std::make_unique<Listener>(reply_with(names_reply(port, "")), port);
    listening_at_ms = ms_between(t0, Clock::now());
  });
  const auto r = gate.wait(loopback(port), 3000ms);
  starter.join();
  REQUIRE(r.kind == WaitResult::Kind::Ready);
  REQUIRE(r.names.empty());
  REQUIRE(listening_at_ms >= 0);
  // The backoff is capped at 8 ms; leave slack for a loaded machine.
  REQUIRE(r.elapsed_ms - listening_at_ms < 100);
}

TEST_CASE("cancel from another thread wakes the wait at once", "[gate]") {
  SECTION("while sleeping between refused connects") {
    Gate gate;
    const uint16_t port = free_port();
    Clock::time_point cancelled_at;
    std::thread canceller([&] {
      std::this_thread::sleep_for(100ms);
      cancelled_at = Clock::now();
      gate.cancel();
    });
    const auto r = gate.wait(loopback(port), 5000ms);
    const auto woke = Clock::now();
    canceller.join();
    REQUIRE(r.kind == WaitResult::Kind::Cancelled);
    REQUIRE(ms_between(cancelled_at, woke) < 20);
  }
  SECTION("while a silent peer holds an attempt") {
    Listener l([](Fd&) {});
    Gate gate;
    Clock::time_point cancelled_at;
    std::thread canceller([&] {
      std::this_thread::sleep_for(100ms);
      cancelled_at = Clock::now();
      gate.cancel();
    });
    const auto r = gate.wait(loopback(l.port()), 5000ms);
    const auto woke = Clock::now();
    canceller.join();
    REQUIRE(r.kind == WaitResult::Kind::Cancelled);
    REQUIRE(r.attempts == 1);
    REQUIRE(ms_between(cancelled_at, woke) < 20);
  }
}

TEST_CASE("cancel is idempotent and permanent", "[gate]") {
  Gate gate;
  gate.cancel();
  gate.cancel();
  REQUIRE(gate.is_cancelled());
  const uint16_t port = free_port();
  for (int i = 0; i < 2; ++i) {
    const auto r = gate.wait(loopback(port), 1000ms);
    REQUIRE(r.kind == WaitResult::Kind::Cancelled);
    REQUIRE(r.attempts == 0);
    REQUIRE(r.elapsed_ms < 20);
  }
}

TEST_CASE("the backoff parameters are honoured", "[gate]") {
  Gate gate;
  Backoff slow;
  slow.initial = 50ms;
  slow.max = 50ms;
  const auto r = gate.wait(loopback(free_port()), 300ms, slow);
  REQUIRE(r.kind == WaitResult::Kind::Timeout);
  // One attempt every ~50 ms over 300 ms: about 6, certainly not the ~20 of the default.
  REQUIRE(r.attempts >= 4);
  REQUIRE(r.attempts <= 8);
}

TEST_CASE("a Gate holds no fd outside a wait", "[gate]") {
  const uint16_t port = free_port();
  const int before = open_fds();
  {
    Gate gate;
    REQUIRE(open_fds() == before);
    for (int i = 0; i < 50; ++i) {
      REQUIRE(gate.wait(loopback(port), 5ms).kind == WaitResult::Kind::Timeout);
    }
    REQUIRE(open_fds() == before);
    gate.cancel();
    REQUIRE(gate.wait(loopback(port), 5ms).kind == WaitResult::Kind::Cancelled);
    REQUIRE(open_fds() == before);
  }
  for (int i = 0; i < 200; ++i) {
    (void)names(loopback(port), limits_after(100ms));
  }
  REQUIRE(open_fds() == before);
}

TEST_CASE("a second wait on a gate that is waiting is refused; the first is unharmed", "[gate]") {
  Gate gate;
  const uint16_t port = free_port();
  std::atomic<bool> started{false};
  WaitResult first;
  std::thread waiter([&] {
    started = true;
    first = gate.wait(loopback(port), 5000ms);
  });
  while (!started) std::this_thread::yield();
  // The waiter registers its wake fd within a few ms; until then a second wait may still win
  // the registration, so retry until the refusal is seen (bounded by the first wait's 5 s).
  bool refused = false;
  const auto until = Clock::now() + 4000ms;
  while (!refused && Clock::now() < until) {
    try {
      (void)gate.wait(loopback(port), 1ms);
      std::this_thread::sleep_for(1ms);
    } catch (const std::invalid_argument& e) {
      REQUIRE(std::string(e.what()) == "gate is already being waited on");
      refused = true;
    }
  }
  REQUIRE(refused);
  gate.cancel();
  waiter.join();
  REQUIRE(first.kind == WaitResult::Kind::Cancelled);
  // After both waits ended the gate is cancelled for good.
  REQUIRE(gate.wait(loopback(port), 5ms).kind == WaitResult::Kind::Cancelled);
}
