defmodule Dala.Dist.Epmd do
  @moduledoc """
  Talks to EPMD (the Erlang Port Mapper Daemon) at the protocol level, and waits for it.

  Every request here is a real EPMD question on a fresh TCP connection (NAMES, PORT_PLEASE2 or
  KILL), answered in full and then closed by EPMD; the native side parses the reply strictly.
  A connection that is accepted and then closed (what `adb reverse` does while nothing listens
  on the laptop), reset, answered with garbage or never answered is therefore an error, never a
  success.

  All socket work runs on a dirty IO scheduler, so no call here ever blocks a normal scheduler.

  This module is public API, like `Dala.Dist`: `Dala.Dist` waits for EPMD with it, and the
  laptop tasks (`mix dala.devices`, `mix dala.connect`) and the demo ask EPMD through it.

  ## The gate

  `wait/2` (and `wait_gate/3`, on a gate from `new_gate/0`) retries NAMES with a short backoff (2 ms growing to 8 ms) until EPMD answers, the
  deadline passes (kept on a monotonic clock within a few milliseconds), or the wait is
  cancelled. Each attempt's I/O is bounded by the time left, so a peer that accepts and never
  answers cannot hold the wait past its deadline. A gate is a native handle owned by the
  process that created it: `cancel/1` wakes a waiter within a few milliseconds, and the death of
  the owner cancels it too. Cancelling is permanent for that gate: later waits on it return
  `{:cancelled, _}` at once, so make a new gate for a new wait.

  ## Options

  Every request takes:

    * `:ip` - EPMD's IPv4 address, as a literal string or a 4-tuple (default `"127.0.0.1"`);
      it is parsed, never resolved through DNS.
    * `:port` - EPMD's TCP port (default `port/0`, the one OTP's `erl_epmd` uses in this VM).
    * `:timeout` - milliseconds for one-shot requests (default `5_000`); `wait` takes its
      timeout as an argument instead.

  Bad options raise `ArgumentError` naming the option.
  """

  alias Dala.Dist.Check

  @default_ip "127.0.0.1"
  @default_timeout 5_000
  @daemon_timeout 5_000

  @typedoc "A gate handle from `new_gate/0`."
  @type gate :: reference()

  @typedoc "A failure reason: `:econnrefused`, `:closed`, `:bad_reply`, `:timeout`, or another POSIX name."
  @type reason :: atom()

  @typedoc "A node name EPMD holds and the distribution port it registered."
  @type name_entry :: {name :: binary(), port :: :inet.port_number()}

  @type option ::
          {:ip, String.t() | :inet.ip4_address()}
          | {:port, 1..65535}
          | {:timeout, pos_integer()}

  @type wait_result ::
          {:ready,
           %{elapsed_ms: non_neg_integer(), attempts: pos_integer(), names: [name_entry()]}}
          | {:timeout,
             %{elapsed_ms: non_neg_integer(), attempts: non_neg_integer(), last_error: reason()}}
          | {:cancelled, %{elapsed_ms: non_neg_integer(), attempts: non_neg_integer()}}

  @doc """
  The EPMD port that OTP's own `erl_epmd` uses in this VM.

  Mirrors `erl_epmd`'s own rule (OTP 25, `get_epmd_port/0`): the first value of the VM's
  `-epmd_port` argument (which is what `ERL_EPMD_PORT` becomes when `erl` starts), else 4369.
  So the gate and `:net_kernel` always talk to the same daemon.

  Raises `ArgumentError` when `-epmd_port` is present without a value or with anything but an
  integer in 1..65535 (where `erl_epmd` itself would crash or fail).

      iex> is_integer(Dala.Dist.Epmd.port())
      true
  """
  @spec port() :: :inet.port_number()
  def port do
    case configured_port() do
      {:ok, port} -> port
      {:error, {:bad_epmd_port, value}} -> raise ArgumentError, port_message(value)
    end
  end

  @doc false
  # port/0 without raising: `{:error, {:bad_epmd_port, value}}` when `-epmd_port` (what
  # ERL_EPMD_PORT becomes) is present but not an integer in 1..65535; `value` is its text
  # ("" when it has none). Dala.Dist turns that into a status instead of a crash.
  @spec configured_port() :: {:ok, :inet.port_number()} | {:error, {:bad_epmd_port, String.t()}}
  def configured_port do
    case :init.get_argument(:epmd_port) do
      {:ok, [[value | _] | _]} ->
        text = List.to_string(value)

        case Integer.parse(text) do
          {port, ""} when port in 1..65_535 -> {:ok, port}
          _ -> {:error, {:bad_epmd_port, text}}
        end

      {:ok, _} ->
        {:error, {:bad_epmd_port, ""}}

      :error ->
        {:ok, 4369}
    end
  end

  defp port_message(""), do: "-epmd_port (ERL_EPMD_PORT) must have a value"

  defp port_message(value),
    do: "-epmd_port (ERL_EPMD_PORT) must be an integer in 1..65535, got: #{Check.short(value)}"

  @doc """
  Asks EPMD for the names it holds (NAMES_REQ).

  `epmd_port` is the port EPMD says it listens on; through a tunnel it can differ from the port
  dialled, which is not an error here.

  Returns `{:ok, %{epmd_port: port, names: [{name, port}]}}` or `{:error, reason}`.
  """
  @spec names([option()]) ::
          {:ok, %{epmd_port: non_neg_integer(), names: [name_entry()]}} | {:error, reason()}
  def names(opts \\ []) do
    {ip, port, timeout} = request_opts(opts)
    :dala_dist_nif.epmd_names(ip, port, timeout)
  end

  @doc """
  Asks EPMD where node `name` (the part before `@`, as a string) listens (PORT_PLEASE2_REQ).

  Returns `{:ok, dist_port}`, `{:error, :not_registered}` when EPMD has no such name, or
  `{:error, reason}`.
  """
  @spec port_please(String.t(), [option()]) ::
          {:ok, :inet.port_number()} | {:error, :not_registered | reason()}
  def port_please(name, opts \\ []) do
    unless is_binary(name),
      do: raise(ArgumentError, "name must be a string, got: #{Check.short(name)}")

    {ip, port, timeout} = request_opts(opts)
    :dala_dist_nif.epmd_port_please(ip, port, name, timeout)
  end

  @doc """
  Asks EPMD to stop (KILL_REQ).

  Returns `:ok` when EPMD answered "OK" (it exits), `{:error, :refused}` when it answered "NO"
  (nodes are still registered and it runs without `-relaxed_command_check`), or
  `{:error, reason}`.
  """
  @spec kill([option()]) :: :ok | {:error, :refused | reason()}
  def kill(opts \\ []) do
    {ip, port, timeout} = request_opts(opts)
    :dala_dist_nif.epmd_kill(ip, port, timeout)
  end

  @doc """
  A new gate, owned by the calling process: if that process exits, waits on the gate end with
  `{:cancelled, _}`.

  Use it to run `wait/3` in another process (a `Task`) while keeping the handle to `cancel/1`.
  """
  @spec new_gate() :: gate()
  def new_gate, do: :dala_dist_nif.gate_new()

  @doc """
  Waits until EPMD answers NAMES, for at most `timeout_ms` milliseconds (1..3_600_000), on a
  gate of its own (options `:ip` and `:port`). To be able to cancel the wait from another
  process, use `new_gate/0` and `wait_gate/3` instead.

  Returns `{:ready, %{elapsed_ms, attempts, names}}`, `{:timeout, %{elapsed_ms, attempts,
  last_error}}` (`last_error` is the last attempt's reason: `:econnrefused` when nothing
  listens, `:closed` for a dead tunnel, `:bad_reply`, `:timeout`, ...) or `{:cancelled,
  %{elapsed_ms, attempts}}`.
  """
  @spec wait(pos_integer(), [option()]) :: wait_result()
  def wait(timeout_ms, opts \\ []), do: wait_gate(new_gate(), timeout_ms, opts)

  @doc """
  Waits on `gate` (from `new_gate/0`) until EPMD answers NAMES, `timeout_ms` passes, or the gate
  is cancelled. One wait at a time per gate. Returns what `wait/2` returns.
  """
  @spec wait_gate(gate(), pos_integer(), [option()]) :: wait_result()
  def wait_gate(gate, timeout_ms, opts \\ []) do
    # The NIF checks the handle itself (it must, to use it safely).
    Check.ms!(timeout_ms, "timeout_ms", 1)
    {ip, port, _} = request_opts(opts)
    :dala_dist_nif.gate_wait(gate, ip, port, timeout_ms)
  end

  @doc """
  Cancels `gate`: a wait on it returns `{:cancelled, _}` within a few milliseconds, and so does
  every later wait on it. Idempotent; runs on a normal scheduler, so it never queues behind the
  wait it cancels.
  """
  @spec cancel(gate()) :: :ok
  def cancel(gate), do: :dala_dist_nif.gate_cancel(gate)

  @doc """
  Starts `epmd -daemon -port port` from the running ERTS and waits until it answers NAMES.

  `epmd -daemon` returns before the daemon has bound its port, so this waits with the gate
  (option `:timeout`, default 5 000 ms). Uses the `epmd` next to the running ERTS
  (`<root>/erts-<vsn>/bin/epmd`), else the one on `PATH`.

  Returns `:ok`, or `{:error, :no_epmd_executable}`, `{:error, {:exit_status, status}}` when
  the command fails, or `{:error, reason}` with the gate's last reason when the daemon never
  answers.
  """
  @spec start_daemon(1..65535, [{:timeout, pos_integer()}]) ::
          :ok | {:error, :no_epmd_executable | {:exit_status, integer()} | reason()}
  def start_daemon(port, opts \\ []) do
    Check.port!(port, "port")
    opts = Keyword.validate!(opts, timeout: @daemon_timeout)
    Check.ms!(opts[:timeout], "timeout", 1)

    with {:ok, exe} <- epmd_executable(),
         {_, 0} <-
           System.cmd(exe, ["-daemon", "-port", Integer.to_string(port)], stderr_to_stdout: true) do
      case wait(opts[:timeout], port: port) do
        {:ready, _} -> :ok
        {:timeout, %{last_error: reason}} -> {:error, reason}
        {:cancelled, _} -> {:error, :cancelled}
      end
    else
      {:error, _} = error -> error
      {_output, status} -> {:error, {:exit_status, status}}
    end
  end

  @doc """
  The `epmd` executable of the running ERTS (`<root>/erts-<vsn>/bin/epmd`), else the one found on
  `PATH`.
  """
  @spec epmd_executable() :: {:ok, Path.t()} | {:error, :no_epmd_executable}
  def epmd_executable do
    beside_erts =
      Path.join([
        List.to_string(:code.root_dir()),
        "erts-#{:erlang.system_info(:version)}",
        "bin",
        "epmd"
      ])

    cond do
      executable?(beside_erts) -> {:ok, beside_erts}
      path = System.find_executable("epmd") -> {:ok, path}
      true -> {:error, :no_epmd_executable}
    end
  end

  defp executable?(path) do
    case File.stat(path) do
      {:ok, %File.Stat{type: :regular, mode: mode}} -> Bitwise.band(mode, 0o111) != 0
      _ -> false
    end
  end

  defp request_opts(opts) do
    opts =
      opts
      |> Check.keyword!("options")
      |> Keyword.validate!(ip: @default_ip, port: nil, timeout: @default_timeout)

    port = if opts[:port], do: Check.port!(opts[:port], "port"), else: port()
    Check.ms!(opts[:timeout], "timeout", 1)
    {ip_binary(opts[:ip]), port, opts[:timeout]}
  end

  # The address is parsed here, never resolved through DNS; the NIF gets the literal.
  defp ip_binary(ip) do
    chars =
      cond do
        is_binary(ip) -> :binary.bin_to_list(ip)
        is_tuple(ip) -> ip |> :inet.ntoa() |> List.wrap()
        true -> []
      end

    case :inet.parse_ipv4strict_address(chars) do
      {:ok, _} ->
        List.to_string(chars)

      {:error, _} ->
        raise ArgumentError,
              "ip must be an IPv4 address literal such as \"127.0.0.1\" or a 4-tuple, got: #{Check.short(ip)}"
    end
  end
end
