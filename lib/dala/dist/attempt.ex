defmodule Dala.Dist.Attempt do
  @moduledoc false
  # The slow work of Dala.Dist.Server, each piece in a process linked to the server (so it dies
  # with it, and the server, which traps exits, hears of its end):
  #
  #   * an attempt: the delay, the EPMD gate (and, on host, starting an epmd), the pre-checks and
  #     :net_kernel's start. It reports its phases and, last, its outcome to the server;
  #   * a stop: waiting until kernel_sup is done with any start in flight, disconnecting,
  #     :net_kernel.stop/0, waiting until EPMD dropped the name, and ending an EPMD this VM
  #     started when no other node uses it.
  #
  # Messages to the server: {:dala_dist_phase, pid, phase} and {:dala_dist_done, pid, result}.
  # The cookie never travels in them: the plan keeps it behind a closure, the process is
  # marked sensitive, and every failure is reduced to a reason without arguments.
  require Logger

  alias Dala.Dist.{Epmd, Identity, Options}

  @ip "127.0.0.1"

  @doc false
  # Starts an attempt for `plan` (validated; with :epmd_port), waiting on `gate`; returns its pid.
  def start_link(plan, gate) do
    server = self()

    spawn_link(fn ->
      Process.flag(:sensitive, true)
      send(server, {:dala_dist_done, self(), run_guarded(plan, gate, server)})
    end)
  end

  @doc false
  # Starts the stop work; `claim` is the EPMD this VM started (nil, {:owned, port} or
  # {:maybe, port}). The result is {net_kernel_result, claim_left}.
  def stop_link(claim) do
    server = self()
    spawn_link(fn -> send(server, {:dala_dist_done, self(), stop(claim)}) end)
  end

  ## The attempt

  defp run_guarded(plan, gate, server) do
    run(plan, gate, server)
  rescue
    # Only the exception's name: its fields or the stack's arguments may hold the cookie.
    e -> {:failed, {:crashed, e.__struct__}}
  catch
    kind, _reason -> {:failed, {:crashed, kind}}
  end

  defp run(plan, gate, server) do
    Process.sleep(plan.delay)
    phase(server, {:waiting, :epmd})
    epmd_port = plan.epmd_port

    with :ok <- ensure_epmd(plan, gate, server, epmd_port),
         :ok <- precheck(plan, epmd_port),
         :ok <- prepare(plan),
         :ok <- clear_stale_net_sup(),
         {:ok, _pid} <- :net_kernel.start(plan.node, %{name_domain: :longnames}),
         :ok <- set_cookie(plan.cookie) do
      {:started, node()}
    else
      {:error, reason} -> classify_net_kernel_error(reason, plan, epmd_port)
      status -> status
    end
  end

  # :net_kernel can go down between its start and this call (stop/0 from elsewhere, a
  # crash): :erlang.set_cookie/1 then raises with the cookie among its arguments. Report the
  # fact only.
  defp set_cookie(hidden) do
    true = :erlang.set_cookie(Options.reveal(hidden))
    :ok
  rescue
    _ -> {:failed, {:net_kernel, :stopped_during_start}}
  catch
    _, _ -> {:failed, {:net_kernel, :stopped_during_start}}
  end

  defp phase(server, phase), do: send(server, {:dala_dist_phase, self(), phase})

  # :net_kernel.stop/0 is terminate_child, then delete_child of kernel_sup's net_sup_dynamic
  # (OTP 25, erl_distribution:stop/0). Killed between the two (a server crash during a stop, or
  # anyone's stop interrupted), it leaves the spec without a process, and every later
  # :net_kernel.start/2 says {:error, :already_present}. With distribution down such a spec is
  # stale: remove it. A spec with a process is left alone.
  defp clear_stale_net_sup do
    stale? =
      Enum.any?(:supervisor.which_children(:kernel_sup), fn {id, pid, _, _} ->
        id == :net_sup_dynamic and not is_pid(pid)
      end)

    if stale? and not Node.alive?(),
      do: _ = :supervisor.delete_child(:kernel_sup, :net_sup_dynamic)

    :ok
  end

  defp ensure_epmd(%{platform: :android} = plan, gate, _server, port) do
    await_gate(gate, port, plan.epmd_timeout)
  end

  defp ensure_epmd(plan, gate, server, port) do
    case Epmd.names(port: port, timeout: 500) do
      {:ok, _} ->
        :ok

      {:error, :econnrefused} ->
        # The desktop flow: nothing listens, so start an EPMD from this ERTS. `epmd -daemon`
        # detaches, so from here on the daemon may be ours even if this process dies: say
        # "maybe" first, then what happened.
        phase(server, {:epmd_starting, port})

        case Epmd.start_daemon(port, timeout: min(plan.epmd_timeout, 5_000)) do
          :ok ->
            phase(server, {:epmd_started, port})
            await_gate(gate, port, plan.epmd_timeout)

          {:error, reason} ->
            phase(server, {:epmd_failed, port})
            {:failed, {:epmd_start, reason}}
        end

      {:error, _slow_or_odd} ->
        # Something listens but does not answer (yet): not ours to replace. Wait for it.
        await_gate(gate, port, plan.epmd_timeout)
    end
  end

  defp await_gate(gate, port, timeout) do
    case Epmd.wait_gate(gate, timeout, port: port, ip: @ip) do
      {:ready, _info} ->
        :ok

      {:timeout, info} ->
        Logger.warning(
          "Dala.Dist: no EPMD answered on #{@ip}:#{port} within #{timeout} ms " <>
            "(last error: #{inspect(info.last_error)}, #{info.attempts} attempts); " <>
            "running without distribution"
        )

        {:skipped, :no_epmd}

      # Only stop/0 (or the server's death) cancels the gate, and both end this process
      # right after: the server never takes this as an outcome.
      {:cancelled, _info} ->
        {:skipped, :cancelled}
    end
  end

  defp precheck(plan, epmd_port) do
    name = short_name(plan.node)

    # This VM's own last registration under the same name (distribution stopped a moment ago,
    # e.g. by :net_kernel.stop/0 from elsewhere) goes away as soon as EPMD sees its connection
    # close: wait for that evidence, at most 2 s, before calling the name taken.
    if Map.get(plan, :last_node) == plan.node do
      poll_until(2_000, fn -> not registered?(name, epmd_port) end)
    end

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

  ## The stop

  # {result, claim}: result is :ok (distribution is not running any more) or
  # {:error, :not_allowed} (the launcher started it, with -name or -sname: OTP keeps it).
  defp stop(claim) do
    # An attempt killed inside :net_kernel.start/2 goes on in kernel_sup (registering with a
    # stalled EPMD can take OTP's 10 s); this returns once kernel_sup is done, so what follows
    # sees its outcome. Only this process waits: the server answers everyone meanwhile.
    _ = :supervisor.which_children(:kernel_sup)
    result = stop_net_kernel()
    {result, stop_own_epmd(claim)}
  end

  defp stop_net_kernel do
    cond do
      not Node.alive?() ->
        clear_stale_net_sup()

      launcher_owned?() ->
        {:error, :not_allowed}

      true ->
        name = short_name(node())
        Enum.each(Node.list([:visible, :hidden]), &Node.disconnect/1)

        case :net_kernel.stop() do
          :ok ->
            await_unregistered(name)
            :ok

          {:error, :not_allowed} ->
            {:error, :not_allowed}

          # Stopped by someone else meanwhile.
          {:error, _} ->
            :ok
        end
    end
  end

  defp launcher_owned? do
    match?(%{started: :static}, :net_kernel.get_state())
  catch
    _, _ -> false
  end

  # EPMD drops a registration when it sees the registering connection close, a moment after
  # :net_kernel.stop/0 returns. Wait for that evidence (at most 2 s), so that a start right
  # after stop/0 does not find its own old name still registered.
  defp await_unregistered(name) do
    case Epmd.configured_port() do
      {:ok, port} -> poll_until(2_000, fn -> registered?(name, port) == false end)
      {:error, _} -> :ok
    end
  end

  defp registered?(name, port) do
    match?({:ok, _}, Epmd.port_please(name, port: port, ip: @ip, timeout: 500))
  end

  # Ends the EPMD this VM started, and only once no node is registered with it any more (ours
  # is gone by now: await_unregistered/1). Returns the claim that is left.
  defp stop_own_epmd(nil), do: nil

  defp stop_own_epmd({:maybe, port}) do
    # Its start was interrupted: it answers within moments or it never came up.
    case Epmd.wait(500, port: port, ip: @ip) do
      {:ready, _} -> stop_own_epmd({:owned, port})
      _ -> nil
    end
  end

  defp stop_own_epmd({:owned, port} = claim) do
    case Epmd.names(port: port, ip: @ip, timeout: 500) do
      {:ok, %{names: []}} ->
        _ = Epmd.kill(port: port, ip: @ip, timeout: 1_000)
        Logger.info("Dala.Dist: stopped the EPMD this node started on port #{port}")
        nil

      {:ok, %{names: names}} ->
        # Still ours: a later stop/0 (or the application's stop), once they are gone, ends it.
        Logger.info(
          "Dala.Dist: leaving the EPMD on port #{port} running, other nodes use it: " <>
            Enum.map_join(names, ", ", &elem(&1, 0))
        )

        claim

      {:error, _gone} ->
        nil
    end
  end

  @doc false
  # Runs the stop work in the calling process (the server's terminate/2 on an orderly stop).
  def stop_now(claim), do: stop(claim)

  defp poll_until(ms, fun) do
    deadline = System.monotonic_time(:millisecond) + ms
    poll_loop(deadline, fun)
  end

  defp poll_loop(deadline, fun) do
    cond do
      fun.() -> :ok
      System.monotonic_time(:millisecond) >= deadline -> :timeout
      true -> poll_wait(deadline, fun)
    end
  end

  defp poll_wait(deadline, fun) do
    Process.sleep(5)
    poll_loop(deadline, fun)
  end

  defp short_name(node), do: node |> Atom.to_string() |> Dala.Dist.Port.name_part()
end
