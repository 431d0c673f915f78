defmodule Dala.Dist.Server do
  @moduledoc false
  # The lifecycle of one distribution attempt, as a state machine under Dala.Supervisor.
  #
  # The server only keeps state and answers quickly. The slow steps (the delay, the EPMD gate,
  # the pre-checks, :net_kernel's start) run in one Task under Dala.Dist.TaskSupervisor, which
  # reports its phases back. The server owns the gate handle, so stop/0 can cancel a waiting gate
  # from here (the native wait wakes within milliseconds), and a crash of the server cancels it too.
  use GenServer
  require Logger

  alias Dala.Dist.{Epmd, Identity}

  @ip "127.0.0.1"

  def start_link(_arg), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @doc false
  # The status is also kept in a protected ETS table, so status/0 answers at once even while
  # the server is busy (stop/0 may wait seconds for :net_kernel to finish a start it interrupted).
  def status, do: :ets.lookup_element(__MODULE__, :status, 2)

  @impl true
  def init(nil) do
    :ets.new(__MODULE__, [:named_table, :protected, read_concurrency: true])
    {:ok, put_status(%{attempt: nil, epmd_started: nil, waiters: []}, :idle)}
  end

  defp put_status(state, status) do
    :ets.insert(__MODULE__, {:status, status})
    Map.put(state, :status, status)
  end

  # While an attempt waits or distribution runs, ensure_started/1 changes nothing. A status
  # {:started, _} whose :net_kernel was stopped behind our back does not count.
  defguardp busy?(status)
            when is_tuple(status) and
                   (elem(status, 0) == :waiting or
                      (elem(status, 0) == :started and node() != :nonode@nohost))

  @impl true
  def handle_call({request, _}, _from, %{status: status} = state)
      when request in [:start, :settle] and busy?(status) do
    {:reply, :ok, state}
  end

  def handle_call({:start, plan}, _from, state), do: {:reply, :ok, begin(plan, state)}
  def handle_call({:settle, status}, _from, state), do: {:reply, :ok, finish(state, status)}

  def handle_call({:await, timeout}, from, state) do
    case state.status do
      :idle ->
        {:reply, {:error, :idle}, state}

      {:waiting, _} ->
        timer = Process.send_after(self(), {:await_timeout, from}, timeout)
        {:noreply, %{state | waiters: [{from, timer} | state.waiters]}}

      final ->
        {:reply, outcome(final), state}
    end
  end

  def handle_call(:stop, _from, state) do
    state = cancel_attempt(state)
    disconnect_and_stop()
    state = stop_own_epmd(state)
    state = reply_waiters(state, {:error, :stopped})
    if state.status != :idle, do: Logger.info("Dala.Dist: distribution stopped")
    {:reply, :ok, put_status(state, :idle)}
  end

  @impl true
  def handle_info({:dala_dist_phase, pid, phase}, %{attempt: %{task: %Task{pid: pid}}} = state) do
    case phase do
      {:epmd_started, port} ->
        {:noreply, %{state | epmd_started: port}}

      {:waiting, _} = status ->
        log_status(status, state.attempt.plan)
        {:noreply, put_status(state, status)}
    end
  end

  def handle_info({ref, result}, %{attempt: %{task: %Task{ref: ref}}} = state) do
    Process.demonitor(ref, [:flush])
    {:noreply, %{finish(state, result) | attempt: nil}}
  end

  def handle_info(
        {:DOWN, ref, :process, _pid, reason},
        %{attempt: %{task: %Task{ref: ref}}} = state
      ) do
    {:noreply, %{finish(state, {:failed, {:crashed, reason}}) | attempt: nil}}
  end

  def handle_info({:await_timeout, from}, state) do
    case List.keytake(state.waiters, from, 0) do
      {{^from, _timer}, waiters} ->
        GenServer.reply(from, {:error, :timeout})
        {:noreply, %{state | waiters: waiters}}

      nil ->
        {:noreply, state}
    end
  end

  # Late messages of an attempt that was cancelled.
  def handle_info(_message, state), do: {:noreply, state}

  ## The attempt

  defp begin(plan, state) do
    gate = Epmd.new_gate()
    server = self()

    task =
      Task.Supervisor.async_nolink(Dala.Dist.TaskSupervisor, fn -> run(plan, gate, server) end)

    if plan.node != plan.base_node,
      do: Logger.info("Dala.Dist: node name resolved to #{plan.node}")

    status = {:waiting, :delay}
    log_status(status, plan)
    put_status(%{state | attempt: %{task: task, gate: gate, plan: plan}}, status)
  end

  @doc false
  # Runs in the attempt's task; returns the final status.
  def run(plan, gate, server) do
    Process.sleep(plan.delay)
    phase(server, {:waiting, :epmd})
    epmd_port = Epmd.port()

    with :ok <- ensure_epmd(plan, gate, server, epmd_port),
         :ok <- precheck(plan, epmd_port),
         :ok <- prepare(plan),
         {:ok, _pid} <- :net_kernel.start(plan.node, %{name_domain: :longnames}) do
      true = Node.set_cookie(Dala.Dist.Options.reveal(plan.cookie))
      {:started, node()}
    else
      {:error, reason} -> classify_net_kernel_error(reason, plan, epmd_port)
      status -> status
    end
  end

  defp phase(server, phase), do: send(server, {:dala_dist_phase, self(), phase})

  defp ensure_epmd(%{platform: :android} = plan, gate, _server, port) do
    await_gate(gate, port, plan.epmd_timeout)
  end

  defp ensure_epmd(plan, gate, server, port) do
    case Epmd.names(port: port, timeout: 500) do
      {:ok, _} ->
        :ok

      {:error, :econnrefused} ->
        # The desktop flow: nothing listens, so start an EPMD from this ERTS. Say so first:
        # `epmd -daemon` detaches at once, so even a stop/0 during the start must end it.
        phase(server, {:epmd_started, port})

        case Epmd.start_daemon(port) do
          :ok -> await_gate(gate, port, plan.epmd_timeout)
          {:error, reason} -> {:failed, {:epmd_start, reason}}
        end

      {:error, _slow_or_odd} ->
        # Something listens but does not answer (yet): not ours to replace. Wait for it.
        await_gate(gate, port, plan.epmd_timeout)
    end
  end

  defp await_gate(gate, port, timeout) do
    case Epmd.wait(gate, timeout, port: port, ip: @ip) do
      {:ready, _info} -> :ok
      {:timeout, info} -> {:skipped, :no_epmd, info}
      {:cancelled, _info} -> {:skipped, :cancelled}
    end
    |> case do
      {:skipped, :no_epmd, info} ->
        Logger.warning(
          "Dala.Dist: no EPMD answered on #{@ip}:#{port} within #{timeout} ms " <>
            "(last error: #{inspect(info.last_error)}, #{info.attempts} attempts); " <>
            "running without distribution"
        )

        {:skipped, :no_epmd}

      other ->
        other
    end
  end

  defp precheck(plan, epmd_port) do
    name = plan.node |> Atom.to_string() |> String.split("@") |> hd()

    case Epmd.port_please(name, port: epmd_port, ip: @ip, timeout: 1_000) do
      {:ok, _port} ->
        Logger.error(
          "Dala.Dist: node name #{plan.node} is already registered with EPMD; " <>
            "give each device its own name with DALA_NODE_SUFFIX"
        )

        {:failed, {:name_in_use, plan.node}}

      _not_registered_or_unknown ->
        case Identity.check_port_free(plan.dist_port, plan.listen_interface) do
          :ok -> :ok
          {:error, reason} -> {:failed, reason}
        end
    end
  end

  defp prepare(plan) do
    if plan.platform == :android, do: ensure_cookie_dir()
    Identity.dist_listen_env(plan.dist_port, plan.listen_interface)
    :ok
  end

  # OTP's auth reads (or creates) $HOME/.erlang.cookie, else the XDG config directory's
  # erlang/.erlang.cookie; some Android launchers leave HOME unset, and then the start fails.
  defp ensure_cookie_dir do
    home =
      case System.get_env("HOME") do
        home when home in [nil, ""] ->
          # A writable place: TMPDIR, /tmp, or the working directory (System.tmp_dir/0).
          home = System.tmp_dir() || File.cwd!()
          System.put_env("HOME", home)
          Logger.info("Dala.Dist: HOME is not set; using #{home} for OTP's cookie file")
          home

        home ->
          home
      end

    _ = File.mkdir_p(:filename.basedir(:user_config, ~c"erlang") |> List.to_string())
    _ = File.mkdir_p(Path.join([home, ".config", "erlang"]))
    :ok
  end

  # OTP reports a taken name, a busy port and a bad name alike; ask again to say which.
  defp classify_net_kernel_error(reason, plan, epmd_port) do
    case precheck(plan, epmd_port) do
      {:failed, _} = failed -> failed
      :ok -> {:failed, {:net_kernel, reason}}
    end
  end

  ## Ending

  defp finish(state, status) do
    log_status(status, state.attempt && state.attempt.plan)
    reply_waiters(put_status(state, status), outcome(status))
  end

  defp outcome({:started, node}), do: {:ok, node}
  defp outcome({:skipped, reason}), do: {:error, reason}
  defp outcome({:failed, reason}), do: {:error, reason}
  defp outcome(:idle), do: {:error, :idle}

  defp reply_waiters(state, reply) do
    for {from, timer} <- state.waiters do
      Process.cancel_timer(timer)
      GenServer.reply(from, reply)
    end

    %{state | waiters: []}
  end

  defp cancel_attempt(%{attempt: nil} = state), do: state

  defp cancel_attempt(%{attempt: %{task: %Task{pid: pid} = task, gate: gate}} = state) do
    Epmd.cancel(gate)
    Task.shutdown(task, :brutal_kill)

    # An EPMD the attempt said it was starting is ours, even if the news is still in the mailbox.
    receive do
      {:dala_dist_phase, ^pid, {:epmd_started, port}} ->
        %{state | attempt: nil, epmd_started: port}
    after
      0 -> %{state | attempt: nil}
    end
  end

  defp disconnect_and_stop do
    # An attempt cancelled inside :net_kernel.start/2 goes on in kernel_sup: killing the task
    # does not stop it, and registering with EPMD can take up to 10 s. This call returns only
    # once kernel_sup is done with it, so Node.alive?/0 below sees its outcome.
    _ = :supervisor.which_children(:kernel_sup)

    if Node.alive?() do
      name = node() |> Atom.to_string() |> String.split("@") |> hd()
      Enum.each(Node.list([:visible, :hidden]), &Node.disconnect/1)

      if :net_kernel.stop() == :ok do
        await_unregistered(name, 200)
      end
    end

    :ok
  end

  # EPMD drops a registration when it sees the registering connection close, a moment after
  # :net_kernel.stop/0 returns. Wait for that (bounded), so that a start right after stop/0
  # does not find its own old name still registered.
  defp await_unregistered(name, tries_left) do
    case Epmd.port_please(name, port: Epmd.port(), ip: @ip, timeout: 500) do
      {:ok, _port} when tries_left > 0 ->
        Process.sleep(5)
        await_unregistered(name, tries_left - 1)

      _ ->
        :ok
    end
  end

  # Ends the EPMD this node started, and only once no node is registered with it any more
  # (EPMD notices our own unregistration asynchronously, so give it a moment).
  defp stop_own_epmd(%{epmd_started: nil} = state), do: state

  defp stop_own_epmd(%{epmd_started: port} = state) do
    case wait_until_empty(port, 20) do
      :empty ->
        _ = Epmd.kill(port: port, ip: @ip, timeout: 1_000)
        Logger.info("Dala.Dist: stopped the EPMD this node started on port #{port}")
        %{state | epmd_started: nil}

      {:names, names} ->
        # Still ours: a later stop/0, once those nodes are gone, ends it.
        Logger.info(
          "Dala.Dist: leaving the EPMD on port #{port} running, other nodes use it: " <>
            Enum.map_join(names, ", ", &elem(&1, 0))
        )

        state

      {:error, _reason} ->
        # Gone already, or it never came up.
        %{state | epmd_started: nil}
    end
  end

  defp wait_until_empty(port, tries_left) do
    case Epmd.names(port: port, ip: @ip, timeout: 500) do
      {:ok, %{names: []}} ->
        :empty

      {:ok, %{names: names}} when tries_left <= 1 ->
        {:names, names}

      {:ok, _names} ->
        Process.sleep(50)
        wait_until_empty(port, tries_left - 1)

      # A daemon whose start stop/0 interrupted may not listen yet: give it half a second.
      {:error, :econnrefused} when tries_left > 10 ->
        Process.sleep(50)
        wait_until_empty(port, tries_left - 1)

      {:error, reason} ->
        {:error, reason}
    end
  end

  ## Logging: one line per state change, never the cookie.

  defp log_status({:waiting, :delay}, plan),
    do: Logger.info("Dala.Dist: starting #{plan.node} in #{plan.delay} ms (#{plan.platform})")

  defp log_status({:waiting, :epmd}, _plan),
    do: Logger.info("Dala.Dist: waiting for EPMD on #{@ip}:#{Epmd.port()}")

  defp log_status({:started, node}, _plan),
    do: Logger.info("Dala.Dist: distribution started as #{node}")

  defp log_status({:skipped, :no_epmd}, _plan), do: :ok

  defp log_status({:skipped, reason}, _plan),
    do: Logger.info("Dala.Dist: distribution skipped (#{reason})")

  defp log_status({:failed, reason}, nil),
    do: Logger.error("Dala.Dist: distribution failed: #{inspect(reason)}")

  defp log_status({:failed, reason}, plan),
    do: Logger.error("Dala.Dist: distribution as #{plan.node} failed: #{inspect(reason)}")

  defp log_status(_status, _plan), do: :ok
end
