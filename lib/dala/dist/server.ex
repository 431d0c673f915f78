defmodule Dala.Dist.Server do
  @moduledoc false
  # The lifecycle of distribution, as a state machine under Dala.Supervisor.
  #
  # Every callback answers at once. The slow work (an attempt, a stop) runs in one process at a
  # time, linked to the server (Dala.Dist.Attempt), so it dies with the server; callers who wait
  # for it (await/1, stop/0) are answered later with GenServer.reply/2. Only the server decides
  # the status, from what it sees in its own loop (Node.alive?/0, a monitor on :net_kernel), so
  # no caller can settle a status that a stop/0 made stale. The status and the EPMD this VM
  # started are published in Dala.Dist.Table, which outlives the server: status/0 answers while
  # the server restarts, and a new server still ends the EPMD an earlier one started.
  use GenServer
  require Logger

  alias Dala.Dist.{Attempt, Epmd, Table}

  @ip "127.0.0.1"

  @doc false
  def start_link(_arg), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @doc false
  def child_spec(arg) do
    # terminate/2 may stop distribution and an EPMD on an orderly shutdown.
    %{id: __MODULE__, start: {__MODULE__, :start_link, [arg]}, shutdown: 15_000}
  end

  @doc false
  # The status, corrected by what is true right now: distribution that runs is {:started, node}
  # whatever was recorded, and a recorded {:started, _} without distribution is :idle.
  def status do
    case Table.get(:status, :idle) do
      {:waiting, _} = waiting -> waiting
      :stopping -> :stopping
      recorded -> reconcile(recorded)
    end
  end

  defp reconcile(recorded) do
    cond do
      Node.alive?() -> {:started, node()}
      match?({:started, _}, recorded) -> :idle
      true -> recorded
    end
  end

  @impl true
  def init(nil) do
    Process.flag(:trap_exit, true)
    # After a crash of an earlier server: its work died with it; the status is what is true now.
    previous = Table.get(:status, :idle)

    status =
      case previous do
        {kind, _} when kind in [:skipped, :failed] -> reconcile(previous)
        _ -> reconcile(:idle)
      end

    state = %{
      status: nil,
      work: nil,
      waiters: [],
      stoppers: [],
      pending: nil,
      stop_result: :ok,
      nk: nil,
      # The name distribution last ran under in this VM: EPMD may still hold it for a moment.
      last_node: if(Node.alive?(), do: node()),
      epmd: Table.get(:epmd, nil)
    }

    {:ok, put_status(state, status)}
  end

  ## Calls

  @impl true
  def handle_call({:ensure, request}, _from, state) do
    state =
      case state.status do
        {:waiting, _} -> state
        :stopping -> if state.pending, do: state, else: %{state | pending: request}
        _ -> if running?(state), do: state, else: decide(request, state)
      end

    {:reply, :ok, state}
  end

  def handle_call({:await, timeout}, from, state) do
    case state.status do
      waiting when waiting == :stopping or elem(waiting, 0) == :waiting ->
        timer = Process.send_after(self(), {:await_timeout, from}, timeout)
        {:noreply, %{state | waiters: [{from, timer} | state.waiters]}}

      _final ->
        {:reply, outcome(status()), state}
    end
  end

  def handle_call(:stop, from, %{status: :stopping} = state) do
    # A start asked for during the stop is dropped: the last word was "stop".
    {:noreply, %{state | stoppers: [from | state.stoppers], pending: nil}}
  end

  def handle_call(:stop, from, state) do
    was = state.status
    state = state |> demonitor_nk() |> reply_waiters({:error, :stopped})
    state = %{state | stoppers: [from], pending: nil}

    state =
      case state.work do
        %{kind: :attempt, pid: pid, gate: gate} ->
          # The gate wakes at once; the kill takes effect when a native call in progress
          # returns (bounded by its own timeout). The stop work starts once the attempt is
          # gone (its EXIT, below), so it sees every EPMD the attempt reported starting.
          Epmd.cancel(gate)
          Process.exit(pid, :kill)
          %{state | work: %{pid: pid, kind: :dying, was: was}}

        nil ->
          start_stop_work(state, was)
      end

    {:noreply, put_status(state, :stopping)}
  end

  defp start_stop_work(state, was) do
    %{state | work: %{pid: Attempt.stop_link(state.epmd), kind: :stop, was: was}}
  end

  ## Messages of the work process

  @impl true
  def handle_info({:dala_dist_phase, pid, phase}, %{work: %{pid: pid, kind: kind}} = state) do
    case phase do
      # A cancelled attempt's progress no longer counts; the EPMD it started still does.
      {:waiting, _} when kind != :attempt -> {:noreply, state}
      _ -> {:noreply, apply_phase(state, phase)}
    end
  end

  def handle_info({:dala_dist_done, pid, result}, %{work: %{pid: pid, kind: :attempt}} = state) do
    # Done: it only exits from here, so it is no longer the server's to account for.
    Process.unlink(pid)
    {:noreply, %{finish_attempt(state, result) | work: nil}}
  end

  def handle_info({:dala_dist_done, pid, result}, %{work: %{pid: pid, kind: :stop}} = state) do
    Process.unlink(pid)
    {:noreply, finish_stop(%{state | work: nil}, state.work.was, result)}
  end

  # The cancelled attempt is gone (every message it sent came before this): now stop.
  def handle_info({:EXIT, pid, _reason}, %{work: %{pid: pid, kind: :dying, was: was}} = state) do
    {:noreply, start_stop_work(state, was)}
  end

  def handle_info({:EXIT, pid, reason}, %{work: %{pid: pid, kind: kind}} = state) do
    # The work process died without reporting (killed from outside): never carry its reason,
    # which may hold anything.
    case kind do
      :attempt ->
        state = finish_attempt(state, {:failed, {:crashed, exit_kind(reason)}})
        {:noreply, %{state | work: nil}}

      :stop ->
        {:noreply, finish_stop(%{state | work: nil}, state.work.was, {:ok, state.epmd})}
    end
  end

  def handle_info({:DOWN, ref, :process, _pid, _reason}, %{nk: ref} = state) do
    # :net_kernel stopped (or crashed) behind our back: the status follows.
    state = %{state | nk: nil}

    case state.status do
      {:started, node} ->
        if Node.alive?() do
          {:noreply, settle_started(state)}
        else
          Logger.info("Dala.Dist: distribution as #{node} was stopped outside Dala.Dist")
          {:noreply, put_status(state, :idle)}
        end

      _ ->
        {:noreply, state}
    end
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

  # Late messages of work that was cancelled, exits of work already accounted for.
  def handle_info(_message, state), do: {:noreply, state}

  @impl true
  def terminate(reason, state) do
    # An orderly stop (the application stopping, System.stop/0): what this library started
    # ends with it, an EPMD included, under the usual rule (only if no other node uses it).
    # After a crash the table keeps the EPMD for the next server instead.
    if orderly?(reason) do
      kill_work(state.work)

      if state.epmd != nil do
        {_result, claim} = Attempt.stop_now(state.epmd)
        Table.put(:epmd, claim)
      end
    end

    :ok
  end

  defp orderly?(reason), do: reason in [:normal, :shutdown] or match?({:shutdown, _}, reason)

  ## Deciding

  # Distribution runs as recorded and is watched: ensure_started/1 has nothing to do. (A
  # recorded {:started, _} whose :net_kernel is gone is not a reason to do nothing.)
  defp running?(%{status: {:started, node}, nk: ref}), do: ref != nil and node == node()
  defp running?(_state), do: false

  defp decide(request, state) do
    state = demonitor_nk(state)

    cond do
      Node.alive?() -> settle_started(state)
      true -> decide_not_alive(request, state)
    end
  end

  defp decide_not_alive(:release, state), do: finish(state, {:skipped, :release})
  defp decide_not_alive(:ios, state), do: finish(state, {:skipped, :not_distributed})

  defp decide_not_alive({:invalid_node, message}, state),
    do: finish(state, {:failed, {:invalid_node, message}})

  defp decide_not_alive({:start, plan}, state) do
    case Epmd.configured_port() do
      {:ok, port} -> begin(Map.merge(plan, %{epmd_port: port, last_node: state.last_node}), state)
      {:error, {:bad_epmd_port, _} = reason} -> finish(state, {:failed, reason})
    end
  end

  defp begin(plan, state) do
    gate = Epmd.new_gate()
    pid = Attempt.start_link(plan, gate)

    if plan.node != plan.base_node,
      do: Logger.info("Dala.Dist: node name resolved to #{plan.node}")

    status = {:waiting, :delay}
    log_status(status, plan)
    put_status(%{state | work: %{pid: pid, kind: :attempt, gate: gate, plan: plan}}, status)
  end

  defp apply_phase(state, {:waiting, _} = status) do
    log_status(status, state.work.plan)
    put_status(state, status)
  end

  defp apply_phase(state, {:epmd_starting, port}), do: put_epmd(state, {:maybe, port})
  defp apply_phase(state, {:epmd_started, port}), do: put_epmd(state, {:owned, port})

  defp apply_phase(%{epmd: {:maybe, port}} = state, {:epmd_failed, port}),
    do: put_epmd(state, nil)

  defp apply_phase(state, _phase), do: state

  defp put_epmd(state, claim) do
    Table.put(:epmd, claim)
    %{state | epmd: claim}
  end

  defp finish_attempt(state, {:started, node}) do
    # Decided here, not by the attempt: :net_kernel may have gone down since.
    if Node.alive?() and node() == node do
      settle_started(state)
    else
      finish(state, {:failed, {:net_kernel, :stopped_during_start}})
    end
  end

  defp finish_attempt(state, result), do: finish(state, result)

  defp settle_started(state) do
    state = demonitor_nk(state)

    case Process.whereis(:net_kernel) do
      nil ->
        finish(state, :idle)

      pid ->
        ref = Process.monitor(pid)
        finish(%{state | nk: ref, last_node: node()}, {:started, node()})
    end
  end

  defp finish_stop(state, was, {result, claim}) do
    state = put_epmd(state, claim)

    case result do
      :ok ->
        if was != :idle, do: Logger.info("Dala.Dist: distribution stopped")

      {:error, :not_allowed} ->
        Logger.warning(
          "Dala.Dist: distribution as #{node()} was started by the launcher (-name/-sname); " <>
            "OTP does not allow stopping it, so it keeps running"
        )
    end

    for from <- state.stoppers, do: GenServer.reply(from, result)
    state = %{state | stoppers: []}

    # The status is what is true now.
    {status, state} =
      if Node.alive?(),
        do: {:started, settle_started(state)},
        else: {:idle, put_status(state, :idle)}

    case state.pending do
      nil ->
        # Waiters who came during the stop.
        reply_waiters(state, if(status == :idle, do: {:error, :stopped}, else: outcome(status())))

      request ->
        decide(request, %{state | pending: nil})
    end
  end

  ## Ending

  defp finish(state, status) do
    log_status(status, state.work && state.work[:plan])
    reply_waiters(put_status(state, status), outcome(status))
  end

  defp put_status(state, status) do
    Table.put(:status, status)
    %{state | status: status}
  end

  @doc false
  # What await/1 returns for a final status (Dala.Dist answers those itself, from the table).
  def outcome({:started, node}), do: {:ok, node}
  def outcome({:skipped, reason}), do: {:error, reason}
  def outcome({:failed, reason}), do: {:error, reason}
  def outcome(:idle), do: {:error, :idle}

  defp reply_waiters(state, reply) do
    for {from, timer} <- state.waiters do
      Process.cancel_timer(timer)
      GenServer.reply(from, reply)
    end

    %{state | waiters: []}
  end

  defp demonitor_nk(%{nk: nil} = state), do: state

  defp demonitor_nk(%{nk: ref} = state) do
    Process.demonitor(ref, [:flush])
    %{state | nk: nil}
  end

  defp kill_work(%{pid: pid} = work) do
    if work[:gate], do: Epmd.cancel(work.gate)
    Process.exit(pid, :kill)
  end

  defp kill_work(nil), do: :ok

  defp exit_kind(reason) when is_atom(reason), do: reason
  defp exit_kind({%{__struct__: module}, _stack}), do: module
  defp exit_kind(_reason), do: :exit

  ## Logging: one line per state change, never the cookie.

  defp log_status({:waiting, :delay}, plan),
    do: Logger.info("Dala.Dist: starting #{plan.node} in #{plan.delay} ms (#{plan.platform})")

  defp log_status({:waiting, :epmd}, plan),
    do: Logger.info("Dala.Dist: waiting for EPMD on #{@ip}:#{plan.epmd_port}")

  defp log_status({:started, node}, _plan),
    do: Logger.info("Dala.Dist: distribution started as #{node}")

  defp log_status({:skipped, :no_epmd}, _plan), do: :ok

  defp log_status({:skipped, reason}, _plan),
    do: Logger.info("Dala.Dist: distribution skipped (#{inspect(reason)})")

  defp log_status({:failed, reason}, nil),
    do: Logger.error("Dala.Dist: distribution failed: #{inspect(reason)}")

  defp log_status({:failed, reason}, plan),
    do: Logger.error("Dala.Dist: distribution as #{plan.node} failed: #{inspect(reason)}")

  defp log_status(_status, _plan), do: :ok
end
