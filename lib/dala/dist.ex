defmodule Dala.Dist do
  @moduledoc """
  Start Erlang distribution on a device safely and reliably, so that a developer's laptop can
  attach to a Dala app (remote IEx, `:erpc`, hot code push, over-the-air update sessions).

    * **iOS**: nothing to do; the launcher already passed `-name`.
    * **Android**: starting distribution at boot races Android's hwui thread pool and aborts the
      app, so the start is deferred by `:delay` ms. Then the library waits (up to
      `:epmd_timeout`, 10 s by default) until the laptop's EPMD answers a real EPMD request
      through `adb reverse tcp:4369 tcp:4369` — a dead tunnel that accepts and closes is not
      mistaken for EPMD — and never spawns a local epmd. No EPMD in time: distribution is skipped
      and the app runs on.
    * **Host** (desktop builds, the laptop itself): the same steps; when no EPMD answers, one is
      started from the running ERTS and ended again by `stop/0`.

  Before `:net_kernel` starts, the library checks that the node name is not registered yet and
  that the dist port is free, so a second phone with the same name is told so
  (`{:name_in_use, node}`) instead of silently running without distribution.

  ## Usage (in your app's start)

      cookie = Dala.Dist.cookie_from_env("MY_APP_DIST_COOKIE", "my_app")
      :ok = Dala.Dist.ensure_started(node: :"my_app@127.0.0.1", cookie: cookie)

      # later, e.g. in a test or a diagnostics screen
      Dala.Dist.status()
      #=> {:started, :"my_app_emulator-5554@127.0.0.1"}

  ## Cookie rotation

  A running node changes its cookie with `Node.set_cookie/1`; no restart is needed. Existing
  connections stay up; new connections need the new cookie.
  """

  alias Dala.Dist.{Check, Identity, Options, Server}

  @typedoc "The platform this build of the library was compiled for."
  @type platform :: :android | :ios | :host

  @typedoc "Where distribution is; see `status/0`."
  @type status ::
          :idle
          | {:waiting, :delay | :epmd}
          | :stopping
          | {:started, node()}
          | {:skipped, :release | :no_epmd | :not_distributed}
          | {:failed, failure()}

  @typedoc "Why an attempt failed."
  @type failure ::
          {:name_in_use, node()}
          | {:port_in_use, :inet.port_number()}
          | {:port_unavailable, :inet.port_number(), :inet.posix()}
          | {:net_kernel, term()}
          | {:invalid_node, String.t()}
          | {:epmd_start, term()}
          | {:bad_epmd_port, String.t()}
          | {:crashed, atom()}

  @typedoc "Options of `ensure_started/1`."
  @type option ::
          {:node, node()}
          | {:cookie, atom()}
          | {:delay, non_neg_integer()}
          | {:dist_port, 1..65_535 | :auto}
          | {:listen_interface, :inet.ip_address()}
          | {:epmd_timeout, pos_integer()}
          | {:platform, platform()}

  @doc """
  The platform the native library was compiled for: `:android`, `:ios` or `:host`.

  Decided at compile time from the C++ target macros (`__ANDROID__`, Apple's
  `TARGET_OS_IPHONE`), never from environment variables.

      iex> Dala.Dist.platform()
      :host
  """
  @spec platform() :: platform()
  def platform, do: :dala_dist_nif.platform()

  @doc """
  Ensures Erlang distribution is running, or is being started, for the current platform.

  Returns `:ok` at once and never blocks: the start runs in the background under the `:dala`
  application's supervisor. Follow it with `status/0` or wait for it with `await/1`. Invalid
  options raise `ArgumentError` naming the option; runtime conditions (no EPMD, a name in use)
  never raise, they become the status.

  Calling it again while a start is waiting or done changes nothing. After `stop/0`, or after a
  skipped or failed attempt, it starts a new attempt.

  ## Options

    * `:node` - the node name atom with its host, e.g. `:"my_app@127.0.0.1"` (required on
      Android and host; distribution uses long names, and a phone is reached at 127.0.0.1).
      `DALA_NODE_SUFFIX` (or the older spelling `dala_NODE_SUFFIX`) inserts a per-device suffix:
      `:"my_app_<suffix>@127.0.0.1"`, see `apply_suffix/2`.
    * `:cookie` - the cookie atom (required on Android and host); use `cookie_from_env/2`.
    * `:delay` - ms to wait before starting, 0..3_600_000 (default 3_000 on Android, 0 on host).
    * `:dist_port` - the dist listen port, 1..65535, or `:auto` for a port derived from the
      suffixed node name (`Dala.Dist.Port`: 9100..9899) (default `DALA_DIST_PORT`, which may be
      `auto` too, else 9100).
    * `:listen_interface` - the IP tuple the dist port listens on (default `{127, 0, 0, 1}` on
      Android, where the laptop reaches the phone through `adb forward`; on host the kernel's
      own `inet_dist_use_interface` if set, else all interfaces).
    * `:epmd_timeout` - how long to wait for EPMD, 1..3_600_000 ms (default 10_000).
    * `:platform` - `:android`, `:ios` or `:host` (default `platform/0`); lets tests, emulators
      and desktop builds pick a flow.

  With `DALA_RELEASE` set to a true value (`1`, `true`, `yes` or `on`, in any case, surrounding
  whitespace ignored) nothing starts (`{:skipped, :release}`); any other value (`0`, `false`,
  empty) is ignored.

  While a `stop/0` is in progress (`:stopping`), the start is remembered and begins once the
  stop is done; a `stop/0` after it cancels it again.

  ## Examples

      iex> Dala.Dist.ensure_started(platform: :ios)
      :ok
      iex> Dala.Dist.status()
      {:skipped, :not_distributed}
      iex> Dala.Dist.stop()
      :ok
  """
  @spec ensure_started([option()]) :: :ok
  def ensure_started(opts \\ []) do
    plan = Options.validate!(opts)

    # Validation (which raises) happens here, in the caller; what to do is decided by the
    # lifecycle server in its own loop, where no stop/0 can come in between.
    request =
      cond do
        Options.release?() ->
          :release

        plan.platform == :ios ->
          :ios

        true ->
          Options.require_identity!(plan)
          start_request(plan)
      end

    call_server({:ensure, request}, 5_000)
  end

  defp start_request(plan) do
    case resolve_node(plan.node) do
      {:ok, node} ->
        {:start,
         Map.merge(plan, %{
           node: node,
           base_node: plan.node,
           dist_port: Identity.resolve_dist_port(plan.dist_port, node)
         })}

      {:error, message} ->
        {:invalid_node, message}
    end
  end

  # The suffix comes from the environment: a name it makes invalid is a runtime condition.
  # (The server logs the resolved name once, when it starts an attempt with it.)
  defp resolve_node(base) do
    {:ok, Identity.apply_suffix(base, Identity.suffix_from_env())}
  rescue
    e in ArgumentError -> {:error, "DALA_NODE_SUFFIX: " <> e.message}
  end

  # The server answers every call at once; only while it restarts after a crash is there no
  # one to answer, and then the call is made again once it is back (within `timeout`).
  defp call_server(request, timeout) do
    deadline = System.monotonic_time(:millisecond) + timeout
    call_until(request, deadline)
  end

  defp call_until(request, deadline) do
    left = max(deadline - System.monotonic_time(:millisecond), 0)

    try do
      GenServer.call(Server, request, left)
    catch
      :exit, {:timeout, _} = reason ->
        exit(reason)

      :exit, reason ->
        # The server went down (or is not up yet): its supervisor restarts it.
        if left > 0 do
          wait_for_server(deadline)
          call_until(request, deadline)
        else
          exit(reason)
        end
    end
  end

  defp wait_for_server(deadline) do
    cond do
      Process.whereis(Server) != nil -> :ok
      System.monotonic_time(:millisecond) >= deadline -> :ok
      true -> wait_for_server_again(deadline)
    end
  end

  defp wait_for_server_again(deadline) do
    Process.sleep(2)
    wait_for_server(deadline)
  end

  @doc """
  Where distribution is.

    * `:idle` - nothing asked to start, or stopped.
    * `{:waiting, :delay}` / `{:waiting, :epmd}` - an attempt is under way.
    * `:stopping` - `stop/0` is ending distribution (it may wait for a start that
      `:net_kernel` has not finished yet).
    * `{:started, node}` - distribution runs as `node`.
    * `{:skipped, reason}` - `:release` (`DALA_RELEASE` true), `:no_epmd` (no EPMD within
      `:epmd_timeout`), `:not_distributed` (iOS without `-name`).
    * `{:failed, reason}` - `{:name_in_use, node}`, `{:port_in_use, port}`,
      `{:port_unavailable, port, posix}` (the listen interface cannot be bound, e.g.
      `:eaddrnotavail`), `{:net_kernel, otp_reason}` (`{:net_kernel, :stopped_during_start}`
      when `:net_kernel` went down before the cookie was set), `{:invalid_node, message}`,
      `{:epmd_start, reason}`, `{:bad_epmd_port, value}` (`ERL_EPMD_PORT`, as `-epmd_port`,
      is not an integer in 1..65535: OTP could not reach EPMD either), `{:crashed, kind}` (a
      bug: please report it; only the exception's module or the exit's kind, never its data).

  The status follows reality: it answers at once from a table (also while the lifecycle
  server restarts), `{:started, node}` means `Node.alive?()` is true right now, and when
  distribution runs (started by the launcher, by another library or after a crash) the status
  says `{:started, node()}` whatever was recorded. If `:net_kernel` is stopped behind this
  library's back, the status becomes `:idle`.

  ## Examples

      iex> Dala.Dist.stop()
      :ok
      iex> Dala.Dist.status()
      :idle
  """
  @spec status() :: status()
  def status, do: Server.status()

  @doc """
  Waits until the current attempt (or stop) ends, for at most `timeout` ms (default 15_000);
  it returns within `timeout` whatever the lifecycle server is doing.

  Returns `{:ok, node}` when distribution started, `{:error, reason}` when it was skipped or
  failed (the reasons of `status/0`), `{:error, :timeout}` when the timeout passes first,
  `{:error, :idle}` when nothing was asked to start, and `{:error, :stopped}` when `stop/0`
  ended the attempt.

  ## Examples

      iex> Dala.Dist.stop()
      :ok
      iex> Dala.Dist.await(100)
      {:error, :idle}
  """
  @spec await(non_neg_integer()) :: {:ok, node()} | {:error, atom() | failure()}
  def await(timeout \\ 15_000)

  def await(timeout) when is_integer(timeout) and timeout >= 0 do
    # Erlang timers reach about 2^45 ms; anything beyond ~49 days is "forever" for an app start.
    timeout = min(timeout, 0xFFFFFFFF)
    await_until(System.monotonic_time(:millisecond) + timeout)
  end

  def await(timeout) do
    raise ArgumentError,
          "timeout must be a non-negative integer (milliseconds), got: #{Check.short(timeout)}"
  end

  # A final status is answered from the table, in the caller; only a start or a stop in
  # progress is waited for, by the server, which answers at the deadline at the latest.
  defp await_until(deadline) do
    case Server.status() do
      {:waiting, _} -> await_server(deadline)
      :stopping -> await_server(deadline)
      final -> Server.outcome(final)
    end
  end

  defp await_server(deadline) do
    left = deadline - System.monotonic_time(:millisecond)

    if left <= 0 do
      {:error, :timeout}
    else
      try do
        # The server's own timer answers at `left`; the call's timeout is only a backstop.
        backstop = if left + 1_000 > 0xFFFFFFFF, do: :infinity, else: left + 1_000
        GenServer.call(Server, {:await, left}, backstop)
      catch
        :exit, {:timeout, _} ->
          {:error, :timeout}

        :exit, _server_went_down ->
          wait_for_server(deadline)
          await_until(deadline)
      end
    end
  end

  @doc """
  Stops distribution; the app runs on.

  Cancels a pending start (a waiting EPMD gate wakes within milliseconds), disconnects every
  connected node, stops `:net_kernel`, waits until EPMD has dropped the node's name, and ends
  the local EPMD only if this node started it and no other node is registered with it. An EPMD
  it did not start (the laptop's, through the tunnel, or a shared one) is never ended.
  Distribution that another library started at run time is stopped too.

  Returns `:ok` once distribution is stopped. When the launcher started distribution (iOS, or
  any VM started with `-name`/`-sname`), OTP does not allow stopping it: `stop/0` then returns
  `{:error, :not_allowed}`, nothing is disconnected, and the status stays `{:started, node}`.

  Only the caller waits: while the stop works (`:stopping`, e.g. while `:net_kernel` finishes a
  start it interrupted), `status/0`, `await/1` and `ensure_started/1` answer at once.
  `ensure_started/1` works again afterwards. When the `:dala` application stops in an orderly
  way (`System.stop/0`, a release shutting down), an EPMD this node started is ended the same
  way.

  ## Examples

      # after an OTA session
      Dala.Dist.ensure_started(node: :"my_app@127.0.0.1", cookie: session_cookie)
      {:ok, _node} = Dala.Dist.await()
      # ... receive BEAMs ...
      :ok = Dala.Dist.stop()
  """
  @spec stop() :: :ok | {:error, :not_allowed}
  def stop, do: call_server(:stop, 60_000)

  @doc """
  Derives this app's distribution cookie from the secret in the environment variable `env_var`.

  The cookie is the lowercase hex of HKDF-SHA256 (RFC 5869) with the secret (trimmed of ASCII
  whitespace) as input key material, the salt `"dala-dist-cookie-v1"` and `app_name` as info,
  32 bytes long: the same secret and app name give the same cookie on the phone and on the
  laptop (`mix dala.cookie ENV_VAR APP_NAME`), and two apps never share one.

  When the variable is unset or empty, the cookie is derived from a random secret drawn once per
  VM and kept in native memory, so no other node can attach; one warning names the variable.

  Raises `ArgumentError` naming the argument for a bad `env_var` (not a non-empty binary, or
  containing `=` or NUL) or `app_name` (not non-empty valid UTF-8 of at most 255 bytes), and
  naming the variable and the rule for a weak secret (fewer than 16 bytes, or fewer than 8
  distinct byte values). Neither the secret nor the cookie appears in any message or log.

  ## Examples

      iex> System.put_env("DALA_DOC_DIST_SECRET", "correct horse battery staple")
      iex> Dala.Dist.cookie_from_env("DALA_DOC_DIST_SECRET", "my_app")
      :e052808221ec1645e4132e10fd9ddd1410a5a0b4176c7c55f00ac6c681bb1f5d
  """
  @spec cookie_from_env(String.t(), String.t()) :: atom()
  defdelegate cookie_from_env(env_var, app_name), to: Dala.Dist.Cookie, as: :from_env

  @doc """
  Inserts a device suffix into a node name: `<name>_<suffix>@<host>`.

  `nil`, `""` or whitespace leave `base_node` unchanged; the suffix is trimmed, and every byte
  outside `[A-Za-z0-9_-]` becomes `_`, so device serials always make valid names. The result
  must be a valid node name of at most 255 characters, otherwise `ArgumentError` says what is
  wrong (and no atom is created).

  ## Examples

      iex> Dala.Dist.apply_suffix(:"my_app@127.0.0.1", "zy22cr")
      :"my_app_zy22cr@127.0.0.1"
      iex> Dala.Dist.apply_suffix(:"my_app@127.0.0.1", "192.168.1.20:5555")
      :"my_app_192_168_1_20_5555@127.0.0.1"
      iex> Dala.Dist.apply_suffix(:my_app, "  ")
      :my_app
  """
  @spec apply_suffix(node() | atom(), String.t() | nil) :: node()
  def apply_suffix(base_node, suffix) do
    unless is_atom(base_node) and not is_nil(base_node) do
      raise ArgumentError, "base_node must be an atom, got: #{Check.short(base_node)}"
    end

    unless is_nil(suffix) or is_binary(suffix) do
      raise ArgumentError, "suffix must be a string or nil, got: #{Check.short(suffix)}"
    end

    Identity.apply_suffix(base_node, suffix)
  end
end
