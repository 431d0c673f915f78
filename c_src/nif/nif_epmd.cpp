// The EPMD client and the gate, as NIFs. Argument decoding and term building only; the work is
// in c_src/core (epmd_proto, epmd_client, gate).
//
// Scheduling (see the table in nif.cpp): every call that touches a socket runs on a dirty IO
// scheduler; gate_new and gate_cancel are constant-time and run on a normal one, so a cancel
// never queues behind the wait it cancels.
#include <chrono>
#include <memory>
#include <new>
#include <stdexcept>
#include <vector>

#include "epmd_client.h"
#include "gate.h"
#include "nif_util.h"

namespace dala::nif {

namespace {

using dala::epmd::Gate;
using dala::epmd::Status;
using dala::epmd::WaitResult;

// Guards the clock arithmetic (now + timeout) only: the public API's own, lower ceiling is in
// Dala.Dist.Check, and its callers never come near this one.
constexpr long kMaxTimeoutMs = 24L * 60 * 60 * 1000;

ErlNifResourceType* gate_type = nullptr;

// The resource holds a pointer, not the Gate itself, so that a half-built resource (allocation
// failed midway) is never destroyed as if it were whole: the destructor deletes what is there.
struct GateResource {
  Gate* gate;
};

void gate_dtor(ErlNifEnv* env, void* obj) {
  (void)env;
  auto* res = static_cast<GateResource*>(obj);
  delete res->gate;  // holds no fd: each wait closes its own before returning
  res->gate = nullptr;
}

// The owner died: whatever waits on this gate stops now.
void gate_down(ErlNifEnv* env, void* obj, ErlNifPid* pid, ErlNifMonitor* mon) {
  (void)env;
  (void)pid;
  (void)mon;
  auto* res = static_cast<GateResource*>(obj);
  if (res->gate != nullptr) res->gate->cancel();
}

Gate& get_gate(ErlNifEnv* env, ERL_NIF_TERM term) {
  void* obj = nullptr;
  if (!enif_get_resource(env, term, gate_type, &obj) ||
      static_cast<GateResource*>(obj)->gate == nullptr) {
    throw std::invalid_argument("gate must be a handle returned by gate_new/0");
  }
  return *static_cast<GateResource*>(obj)->gate;
}

epmd::Endpoint get_endpoint(ErlNifEnv* env, ERL_NIF_TERM ip, ERL_NIF_TERM port) {
  const std::string_view text = get_binary(env, ip, "ip");
  return epmd::make_endpoint(text, get_int(env, port, "port", 1, 65535));
}

std::chrono::milliseconds get_timeout(ErlNifEnv* env, ERL_NIF_TERM term) {
  return std::chrono::milliseconds(get_int(env, term, "timeout_ms", 1, kMaxTimeoutMs));
}

ERL_NIF_TERM error_tuple(ErlNifEnv* env, const char* reason) {
  return enif_make_tuple2(env, atoms.error, make_atom(env, reason));
}

template <typename T>
ERL_NIF_TERM outcome_error(ErlNifEnv* env, const epmd::Outcome<T>& o) {
  // One-shot requests have no cancel fd, so Cancelled cannot happen; say so if it ever does.
  return error_tuple(env, o.status == Status::Cancelled ? "cancelled" : o.reason);
}

ERL_NIF_TERM names_list(ErlNifEnv* env, const std::vector<epmd::NodeEntry>& names) {
  ERL_NIF_TERM list = enif_make_list(env, 0);
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    ERL_NIF_TERM entry =
        enif_make_tuple2(env, make_binary(env, it->name), enif_make_uint(env, it->port));
    list = enif_make_list_cell(env, entry, list);
  }
  return list;
}

ERL_NIF_TERM make_map(ErlNifEnv* env, ERL_NIF_TERM* keys, ERL_NIF_TERM* values, size_t n) {
  ERL_NIF_TERM map;
  if (!enif_make_map_from_arrays(env, keys, values, n, &map)) {
    throw std::logic_error("duplicate map keys");
  }
  return map;
}

}  // namespace

bool load_gate(ErlNifEnv* env, const char** why) {
  ErlNifResourceTypeInit init{};
  init.dtor = gate_dtor;
  init.down = gate_down;
  gate_type = enif_open_resource_type_x(
      env, "dala_gate", &init,
      static_cast<ErlNifResourceFlags>(ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER), nullptr);
  if (gate_type == nullptr) {
    *why = "cannot open the dala_gate resource type";
    return false;
  }
  return true;
}

DALA_NIF(epmd_names) {
  (void)argc;
  return guard(env, [&] {
    const auto ep = get_endpoint(env, argv[0], argv[1]);
    const auto timeout = get_timeout(env, argv[2]);
    const auto o = epmd::names(ep, epmd::limits_after(timeout));
    if (!o.ok()) return outcome_error(env, o);
    ERL_NIF_TERM keys[] = {atoms.epmd_port, atoms.names};
    ERL_NIF_TERM values[] = {enif_make_uint(env, o.value.epmd_port),
                             names_list(env, o.value.names)};
    return enif_make_tuple2(env, atoms.ok, make_map(env, keys, values, 2));
  });
}

DALA_NIF(epmd_port_please) {
  (void)argc;
  return guard(env, [&] {
    const auto ep = get_endpoint(env, argv[0], argv[1]);
    const std::string_view name = get_binary(env, argv[2], "name");
    const auto timeout = get_timeout(env, argv[3]);
    const auto o = epmd::port_please(ep, name, epmd::limits_after(timeout));
    if (!o.ok()) return outcome_error(env, o);
    if (!o.value.registered) return enif_make_tuple2(env, atoms.error, atoms.not_registered);
    return enif_make_tuple2(env, atoms.ok, enif_make_uint(env, o.value.port));
  });
}

DALA_NIF(epmd_kill) {
  (void)argc;
  return guard(env, [&] {
    const auto ep = get_endpoint(env, argv[0], argv[1]);
    const auto timeout = get_timeout(env, argv[2]);
    const auto o = epmd::kill(ep, epmd::limits_after(timeout));
    if (!o.ok()) return outcome_error(env, o);
    return o.value ? atoms.ok : error_tuple(env, "refused");
  });
}

DALA_NIF(gate_new) {
  (void)argc;
  (void)argv;
  return guard(env, [&] {
    auto gate = std::make_unique<Gate>();
    void* obj = enif_alloc_resource(gate_type, sizeof(GateResource));
    if (obj == nullptr) throw std::bad_alloc();
    auto* res = static_cast<GateResource*>(obj);
    res->gate = gate.release();
    ERL_NIF_TERM term = enif_make_resource(env, obj);
    // The term now keeps the resource alive; drop our own reference so GC can collect it.
    enif_release_resource(obj);
    ErlNifPid self;
    if (enif_self(env, &self) == nullptr || enif_monitor_process(env, obj, &self, nullptr) != 0) {
      throw std::runtime_error("gate_new: cannot monitor the calling process");
    }
    return term;
  });
}

DALA_NIF(gate_wait) {
  (void)argc;
  return guard(env, [&] {
    Gate& gate = get_gate(env, argv[0]);
    const auto ep = get_endpoint(env, argv[1], argv[2]);
    const auto timeout = get_timeout(env, argv[3]);
    const WaitResult r = gate.wait(ep, timeout);
    const ERL_NIF_TERM elapsed = enif_make_int64(env, r.elapsed_ms);
    const ERL_NIF_TERM attempts = enif_make_uint(env, r.attempts);
    switch (r.kind) {
      case WaitResult::Kind::Ready: {
        ERL_NIF_TERM keys[] = {atoms.elapsed_ms, atoms.attempts, atoms.names};
        ERL_NIF_TERM values[] = {elapsed, attempts, names_list(env, r.names)};
        return enif_make_tuple2(env, atoms.ready, make_map(env, keys, values, 3));
      }
      case WaitResult::Kind::Timeout: {
        ERL_NIF_TERM keys[] = {atoms.elapsed_ms, atoms.attempts, atoms.last_error};
        ERL_NIF_TERM values[] = {elapsed, attempts, make_atom(env, r.last_error)};
        return enif_make_tuple2(env, atoms.timeout, make_map(env, keys, values, 3));
      }
      case WaitResult::Kind::Cancelled:
        break;
    }
    ERL_NIF_TERM keys[] = {atoms.elapsed_ms, atoms.attempts};
    ERL_NIF_TERM values[] = {elapsed, attempts};
    return enif_make_tuple2(env, atoms.cancelled, make_map(env, keys, values, 2));
  });
}

DALA_NIF(gate_cancel) {
  (void)argc;
  return guard(env, [&] {
    get_gate(env, argv[0]).cancel();
    return atoms.ok;
  });
}

}  // namespace dala::nif
