// The EPMD gate: wait until an EPMD answers a NAMES request, a deadline passes, or someone cancels.
//
// Each attempt is a full NAMES exchange (epmd_client.h), so a connection that is accepted and then
// closed, reset, answered with garbage or never answered is not "ready"; only a complete,
// well-formed reply is. Between attempts the gate sleeps a short, growing backoff; all waiting
// (sockets and sleep) is poll() on the Gate's wake fd too, so cancel() ends a wait at once.
// Time is the steady clock; no attempt's I/O runs past the overall deadline.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "epmd_client.h"

namespace dala::epmd {

// Tuning of the wait. A listener that appears is noticed at most one sleep (plus one exchange)
// later, so the cap bounds the detection latency: 8 ms keeps EPMD-up -> Node.alive?/0 under
// 10 ms. The cost is one wake-up per attempt; a refused connect on loopback is a few
// microseconds of syscalls, and what dominates is the wake-up itself (measured on the 2-core VM
// of bench/results: 40-140 us each, about 1.4 % of a core at this cap; see the backoff curve
// there).
struct Backoff {
  std::chrono::microseconds initial{2000};
  std::chrono::microseconds max{8000};
  unsigned factor = 2;  // each sleep is the previous one times `factor`, capped at `max`
  // Bound on one attempt's I/O (connect + request + reply), further capped by the time left.
  // A live EPMD answers in well under a millisecond; this only limits a silent peer.
  std::chrono::milliseconds attempt_timeout{500};
};

struct WaitResult {
  enum class Kind { Ready, Timeout, Cancelled };
  Kind kind = Kind::Timeout;
  int64_t elapsed_ms = 0;
  uint32_t attempts = 0;
  const char* last_error = "timeout";  // Timeout only: the last attempt's reason, static string
  std::vector<NodeEntry> names;        // Ready only: what EPMD holds
  uint32_t epmd_port = 0;              // Ready only: the port EPMD says it listens on
};

// A cancellable gate.
//
// A Gate holds no fd between waits: each wait() opens its own wake fd (an eventfd on Linux, a
// pipe elsewhere), registers it for cancel() and closes it before returning, so no fd outlives
// a wait however long the Gate itself lives (a NIF resource lives until garbage collection).
//
// cancel() is thread-safe and idempotent, and it is permanent: a wait() that is running returns
// Cancelled at once, and so does every later one, so a new wait needs a new Gate. One wait() at a
// time: a wait() while another runs on the same Gate throws std::invalid_argument.
class Gate {
 public:
  Gate() = default;
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  ~Gate() = default;

  // Throws std::system_error when no fd is available for the wake-up, and
  // std::invalid_argument when another wait() is running on this Gate.
  WaitResult wait(const Endpoint& ep, std::chrono::milliseconds timeout,
                  const Backoff& backoff = Backoff{});
  void cancel() noexcept;
  bool is_cancelled() const noexcept { return cancelled_.load(std::memory_order_acquire); }

 private:
  std::mutex mu_;
  int wake_fd_ = -1;  // write end of the running wait's wake fd, or -1; guarded by mu_
  std::atomic<bool> cancelled_{false};
};

const char* kind_name(WaitResult::Kind k) noexcept;

}  // namespace dala::epmd
