defmodule Dala.LifecycleRacesTest do
  # Issue 13: the lifecycle under races, crashes and hostile peers. One test (or more) per item,
  # against real epmd daemons, real nodes and real sockets on loopback; interleavings are forced
  # with :erlang.suspend_process/1 and waits are on state.
  use ExUnit.Case, async: false
  @moduletag :vm_dist

  import ExUnit.CaptureLog
  alias Dala.Dist
  alias Dala.Dist.Epmd
  alias Dala.Test.{DistCase, Net, Peer}

  @secret_var "DALA_RACES_TEST_SECRET"
  @app "races_app"
  @alive2_req 120

  setup do
    DistCase.context(@secret_var, @app, "race")
  end

  defp host_opts(ctx, opts \\ []),
    do: [platform: :host, node: ctx.node, cookie: ctx.cookie, dist_port: ctx.dist_port] ++ opts

  defp android_opts(ctx, opts),
    do: [platform: :android, node: ctx.node, cookie: ctx.cookie, delay: 0] ++ opts

  defp foreign_epmd(ctx) do
    epmd = Net.start_epmd(ctx.epmd_port)
    on_exit(fn -> Net.stop_epmd(epmd) end)
    epmd
  end

  defp server!, do: Process.whereis(Dala.Dist.Server) || flunk("no lifecycle server")

  defp queue_len(pid), do: elem(Process.info(pid, :message_queue_len), 1)

  defp wait_queue(pid, n) do
    assert DistCase.eventually(fn -> queue_len(pid) >= n end), "the server never got #{n} calls"
  end

  # Kills the lifecycle server and waits for its successor.
  defp kill_server do
    old = server!()
    ref = Process.monitor(old)
    Process.exit(old, :kill)
    assert_receive {:DOWN, ^ref, :process, ^old, :killed}
    assert DistCase.eventually(fn -> Process.whereis(Dala.Dist.Server) not in [nil, old] end)
  end

  # An EPMD a test's VM started (on a private port) is ended by the test, whatever happened:
  # unregistered first, so that EPMD accepts the KILL.
  defp ensure_epmd_killed_at_exit(port) do
    on_exit(fn ->
      Dist.stop()
      :net_kernel.stop()
      Epmd.kill(port: port, timeout: 500)
    end)
  end

  describe "1. stop/0 racing ensure_started/1" do
    test "a start decided before a stop cannot settle {:started, _} after it", ctx do
      foreign_epmd(ctx)
      :ok = Dist.ensure_started(host_opts(ctx))
      assert {:ok, node} = Dist.await(10_000)
      assert node == ctx.node

      # The server sees, in this order: stop/0, then ensure_started/1 from a caller that saw
      # distribution running before the stop.
      server = server!()
      :erlang.suspend_process(server)

      {stopper, starter} =
        try do
          stopper = Task.async(fn -> Dist.stop() end)
          wait_queue(server, 1)
          starter = Task.async(fn -> Dist.ensure_started(host_opts(ctx)) end)
          wait_queue(server, 2)
          {stopper, starter}
        after
          :erlang.resume_process(server)
        end

      assert Task.await(stopper, 30_000) == :ok
      assert Task.await(starter, 30_000) == :ok

      # The start came after the stop: a new attempt, whose outcome is the truth.
      result = Dist.await(10_000)
      DistCase.assert_truthful()

      case result do
        {:ok, node} -> assert Node.alive?() and node() == node
        {:error, _} -> refute Node.alive?()
      end

      assert :ok = Dist.stop()
      refute Node.alive?()
      assert DistCase.assert_truthful() == :idle
    end
  end

  describe "2. the attempt is tied to the server" do
    test "a server killed during the delay takes its attempt with it", ctx do
      foreign_epmd(ctx)
      :ok = Dist.ensure_started(host_opts(ctx, delay: 60_000))
      assert Dist.status() == {:waiting, :delay}

      assert [worker] = DistCase.work_processes()
      ref = Process.monitor(worker)
      kill_server()
      assert_receive {:DOWN, ^ref, :process, ^worker, _}, 5_000

      refute Node.alive?()
      assert Dist.status() == :idle
      assert Dist.await(100) == {:error, :idle}
      # And a new start works.
      :ok = Dist.ensure_started(host_opts(ctx))
      assert Dist.await(10_000) == {:ok, ctx.node}
    end

    test "an EPMD the attempt started is still ended after the server restarted", ctx do
      ensure_epmd_killed_at_exit(ctx.epmd_port)
      assert {:error, :econnrefused} = Epmd.names(port: ctx.epmd_port, timeout: 200)

      :ok = Dist.ensure_started(host_opts(ctx))
      assert Dist.await(10_000) == {:ok, ctx.node}
      assert {:ok, _} = Epmd.names(port: ctx.epmd_port)

      kill_server()
      assert Dist.status() == {:started, ctx.node}
      assert Dist.await(0) == {:ok, ctx.node}

      assert Dist.stop() == :ok
      refute Node.alive?()
      assert {:error, _} = Epmd.names(port: ctx.epmd_port, timeout: 200)
    end
  end

  describe "3. stop/0 when the launcher owns distribution" do
    test "says {:error, :not_allowed} and keeps {:started, node}, never a false :idle" do
      {laptop, _} = DistCase.laptop_epmd()
      node = :"launcher#{System.unique_integer([:positive])}@127.0.0.1"

      eval = """
      {ok, _} = application:ensure_all_started(dala),
      ok = 'Elixir.Dala.Dist':ensure_started([{platform, ios}]),
      S0 = 'Elixir.Dala.Dist':status(),
      R = 'Elixir.Dala.Dist':stop(),
      I = fun(T) -> 'Elixir.Kernel':inspect(T) end,
      io:format("before=~s stop=~s status=~s await=~s alive=~p~n",
                [I(S0), I(R), I('Elixir.Dala.Dist':status()), I('Elixir.Dala.Dist':await(0)),
                 is_alive()]),
      halt().
      """

      {out, 0} = Peer.eval(node, laptop, eval)

      assert out =~
               "before={:started, :\"#{node}\"} stop={:error, :not_allowed} " <>
                 "status={:started, :\"#{node}\"} await={:ok, :\"#{node}\"} alive=true"
    end
  end

  describe "4. nothing blocks past its bound" do
    test "while stop/0 waits for a stalled registration, every other call answers", ctx do
      {laptop, _} = DistCase.laptop_epmd()
      tunnel = Net.holding_forwarder(ctx.epmd_port, laptop, @alive2_req, self())
      on_exit(fn -> Net.stop_listener(tunnel) end)
      :ok = Dist.ensure_started(android_opts(ctx, dist_port: ctx.dist_port))
      assert_receive {:held, holder}, 5_000

      stopper = Task.async(fn -> Dist.stop() end)
      assert DistCase.eventually(fn -> Dist.status() == :stopping end)

      {await_us, await} = :timer.tc(fn -> Dist.await(100) end)
      assert await == {:error, :timeout}
      assert await_us < 150_000

      {start_us, :ok} =
        :timer.tc(fn -> Dist.ensure_started(android_opts(ctx, dist_port: ctx.dist_port)) end)

      assert start_us < 50_000
      assert Dist.status() == :stopping

      # The registration goes through after all: stop/0 stops it, then the start asked for
      # during the stop begins (and is held at its own registration).
      send(holder, :release)
      assert Task.await(stopper, 30_000) == :ok
      assert_receive {:held, holder2}, 5_000
      refute Node.alive?()
      assert {:waiting, :epmd} = DistCase.assert_truthful()
      send(holder2, :release)
      assert Dist.await(10_000) == {:ok, ctx.node}
      assert Dist.stop() == :ok
      assert DistCase.assert_truthful() == :idle
    end

    test "host flow: stop/0 with other nodes on its own EPMD checks once, and a later stop/0 ends it",
         ctx do
      ensure_epmd_killed_at_exit(ctx.epmd_port)
      :ok = Dist.ensure_started(host_opts(ctx))
      assert Dist.await(10_000) == {:ok, ctx.node}
      other = Peer.start(:"other#{System.unique_integer([:positive])}@127.0.0.1", ctx.epmd_port)
      stopped = :atomics.new(1, [])
      on_exit(fn -> if :atomics.get(stopped, 1) == 0, do: Peer.stop(other) end)

      log =
        capture_log(fn ->
          {us, :ok} = :timer.tc(&Dist.stop/0)
          # The evidence (our name gone, another still there) is read, not waited out.
          assert us < 500_000, "stop/0 took #{us} µs"
        end)

      assert log =~ "leaving the EPMD on port #{ctx.epmd_port} running, other nodes use it"
      assert {:ok, %{names: [_]}} = Epmd.names(port: ctx.epmd_port)

      Peer.stop(other)
      :atomics.put(stopped, 1, 1)

      assert DistCase.eventually(fn ->
               Epmd.names(port: ctx.epmd_port) == {:ok, %{epmd_port: ctx.epmd_port, names: []}}
             end)

      assert Dist.stop() == :ok
      assert {:error, _} = Epmd.names(port: ctx.epmd_port, timeout: 200)
    end

    test "status/0 answers while the server restarts" do
      server = server!()
      :ok = Supervisor.terminate_child(Dala.Supervisor, Dala.Dist.Server)
      on_exit(fn -> Supervisor.restart_child(Dala.Supervisor, Dala.Dist.Server) end)
      refute Process.alive?(server)
      assert Dist.status() == :idle
      assert Dist.await(0) == {:error, :idle}
      {:ok, _} = Supervisor.restart_child(Dala.Supervisor, Dala.Dist.Server)
    end
  end

  describe "5. the status follows reality" do
    test ":net_kernel stopped behind our back: no more {:started, _} or {:ok, _}", ctx do
      foreign_epmd(ctx)
      :ok = Dist.ensure_started(host_opts(ctx))
      assert Dist.await(10_000) == {:ok, ctx.node}

      :ok = :net_kernel.stop()
      assert Dist.status() == :idle
      assert Dist.await(1_000) == {:error, :idle}
      # The server's own record follows too (it monitors :net_kernel).
      assert DistCase.eventually(fn -> :sys.get_state(Dala.Dist.Server).status == :idle end)
    end

    test "a stop cut short inside OTP (net_sup's spec left without a process) blocks no later start",
         ctx do
      foreign_epmd(ctx)
      :ok = Dist.ensure_started(host_opts(ctx))
      assert Dist.await(10_000) == {:ok, ctx.node}

      # What a :net_kernel.stop/0 killed between its terminate_child and delete_child leaves.
      :ok = :supervisor.terminate_child(:kernel_sup, :net_sup_dynamic)
      refute Node.alive?()
      assert DistCase.eventually(fn -> Dist.status() == :idle end)

      :ok = Dist.ensure_started(host_opts(ctx))
      assert Dist.await(10_000) == {:ok, ctx.node}

      # And a stop in that state leaves OTP able to start again on its own.
      :ok = :supervisor.terminate_child(:kernel_sup, :net_sup_dynamic)
      assert Dist.stop() == :ok
      assert {:ok, _} = :net_kernel.start(ctx.node, %{name_domain: :longnames})
      :ok = :net_kernel.stop()
    end

    test "distribution started by someone else is {:started, node} and stop/0 stops it", ctx do
      foreign_epmd(ctx)
      {:ok, _} = :net_kernel.start(ctx.node, %{name_domain: :longnames})
      assert Dist.status() == {:started, ctx.node}
      assert Dist.stop() == :ok
      refute Node.alive?()
      assert Dist.status() == :idle
    end
  end

  describe "6. no cookie in any crash path" do
    test ":net_kernel going down between its start and the cookie: a clean failure", ctx do
      {laptop, _} = DistCase.laptop_epmd()
      tunnel = Net.holding_forwarder(ctx.epmd_port, laptop, @alive2_req, self())
      on_exit(fn -> Net.stop_listener(tunnel) end)
      hex = Atom.to_string(ctx.cookie)

      log =
        capture_log(fn ->
          :ok = Dist.ensure_started(android_opts(ctx, dist_port: ctx.dist_port))
          assert_receive {:held, holder}, 5_000

          # The attempt is inside :net_kernel.start/2. Hold it there, let the start finish,
          # stop :net_kernel from outside, then let the attempt go on to set the cookie.
          assert [worker] = DistCase.work_processes()
          :erlang.suspend_process(worker)

          try do
            send(holder, :release)
            assert DistCase.eventually(fn -> Node.alive?() end)
            _ = :supervisor.which_children(:kernel_sup)
            :ok = :net_kernel.stop()
          after
            :erlang.resume_process(worker)
          end

          assert Dist.await(5_000) == {:error, {:net_kernel, :stopped_during_start}}
          assert Dist.status() == {:failed, {:net_kernel, :stopped_during_start}}
          refute Node.alive?()
          Logger.flush()
        end)

      assert log =~ "stopped_during_start"
      refute log =~ hex
      refute inspect(:sys.get_state(Dala.Dist.Server), limit: :infinity) =~ hex
    end
  end

  describe "7. a cookie no handshake can use" do
    test "characters above U+00FF raise ArgumentError naming :cookie, never the cookie", ctx do
      cookie = :"secret_ĀāĂ_#{System.unique_integer([:positive])}"

      error =
        assert_raise ArgumentError, fn ->
          Dist.ensure_started(host_opts(ctx) |> Keyword.put(:cookie, cookie))
        end

      assert error.message =~ "option :cookie"
      refute error.message =~ Atom.to_string(cookie)
      assert Dist.status() == :idle
      # Latin-1 characters are fine (erlang:md5/1 digests them as bytes).
      foreign_epmd(ctx)
      :ok = Dist.ensure_started(host_opts(ctx) |> Keyword.put(:cookie, :café_ÿ))
      assert Dist.await(10_000) == {:ok, ctx.node}
    end
  end

  describe "8. a bad ERL_EPMD_PORT" do
    test "is {:failed, {:bad_epmd_port, value}}, and the application stays up" do
      for value <- ["abc", "", "4369x", "0", "70000"] do
        # -epmd_port is what erl makes of ERL_EPMD_PORT ("" gives the flag without a value).
        # The long delay makes sure a peer that wrongly went ahead never talks to any EPMD.
        eval = """
        {ok, _} = application:ensure_all_started(dala),
        Server = whereis('Elixir.Dala.Dist.Server'),
        C = list_to_atom("c" ++ integer_to_list(erlang:unique_integer([positive]))),
        Opts = [{platform, android}, {node, 'bad_port@127.0.0.1'}, {cookie, C}, {delay, 60000}],
        [ok = 'Elixir.Dala.Dist':ensure_started(Opts) || _ <- lists:seq(1, 6)],
        I = fun(T) -> 'Elixir.Kernel':inspect(T) end,
        io:format("status=~s await=~s same_server=~p dala_running=~p~n",
                  [I('Elixir.Dala.Dist':status()), I('Elixir.Dala.Dist':await(0)),
                   whereis('Elixir.Dala.Dist.Server') =:= Server,
                   lists:keymember(dala, 1, application:which_applications())]),
        halt().
        """

        flag = if value == "", do: ["-epmd_port"], else: ["-epmd_port", value]
        args = ["-noshell" | flag] ++ Peer.code_paths() ++ ["-eval", eval]

        {out, 0} =
          System.cmd(System.find_executable("erl"), args,
            env: [{"ERL_EPMD_PORT", nil}],
            stderr_to_stdout: true
          )

        assert out =~
                 "status={:failed, {:bad_epmd_port, \"#{value}\"}} " <>
                   "await={:error, {:bad_epmd_port, \"#{value}\"}} " <>
                   "same_server=true dala_running=true",
               "ERL_EPMD_PORT=#{inspect(value)}: #{out}"
      end
    end
  end

  describe "9. deadlines and cancel against a peer that keeps sending" do
    test "names/1 ends by its timeout" do
      port = Net.free_port()
      peer = Net.streaming_listener(port)
      on_exit(fn -> Net.stop_listener(peer) end)

      for timeout <- [5, 100] do
        {us, result} = :timer.tc(fn -> Epmd.names(port: port, timeout: timeout) end)
        assert result in [{:error, :timeout}, {:error, :bad_reply}]
        assert us < (timeout + 50) * 1_000, "names(timeout: #{timeout}) took #{us} µs"
      end
    end

    test "a gate cancelled while the peer streams wakes within milliseconds" do
      port = Net.free_port()
      peer = Net.streaming_listener(port, 230_000, self())
      on_exit(fn -> Net.stop_listener(peer) end)
      gate = Epmd.new_gate()
      waiter = Task.async(fn -> Epmd.wait_gate(gate, 60_000, port: port) end)
      # The gate's NAMES request has had its burst and is being trickled to.
      assert_receive {:trickling, _}, 5_000
      t0 = System.monotonic_time(:microsecond)
      :ok = Epmd.cancel(gate)
      assert {:cancelled, _} = Task.await(waiter, 10_000)
      us = System.monotonic_time(:microsecond) - t0
      assert us < 50_000, "the cancelled gate took #{us} µs to wake"
    end
  end

  describe "11. what the host flow started ends with the app" do
    test "an orderly stop of the VM ends the EPMD the host flow started" do
      epmd_port = Net.free_port()
      ensure_epmd_killed_at_exit(epmd_port)
      node = :"orderly#{System.unique_integer([:positive])}@127.0.0.1"

      eval = """
      {ok, _} = application:ensure_all_started(dala),
      C = list_to_atom("c" ++ integer_to_list(erlang:unique_integer([positive]))),
      ok = 'Elixir.Dala.Dist':ensure_started([{platform, host}, {node, '#{node}'}, {cookie, C},
                                             {dist_port, #{Net.free_port()}}]),
      io:format("await=~p~n", ['Elixir.Dala.Dist':await(10000)]),
      init:stop().
      """

      {out, 0} = Peer.eval(nil, epmd_port, eval)
      assert out =~ "await={ok,'#{node}'}"
      assert {:error, _} = Epmd.names(port: epmd_port, timeout: 200)
    end
  end

  describe "12. smaller" do
    test "DALA_RELEASE follows the usual truthy set" do
      for value <- ["1", " 1", "true", "TRUE", "yes", "on\n"] do
        System.put_env("DALA_RELEASE", value)
        :ok = Dist.ensure_started(platform: :ios)
        assert Dist.status() == {:skipped, :release}, "DALA_RELEASE=#{inspect(value)}"
        :ok = Dist.stop()
      end

      for value <- ["0", "false", "", "no", "off"] do
        System.put_env("DALA_RELEASE", value)
        :ok = Dist.ensure_started(platform: :ios)
        assert Dist.status() == {:skipped, :not_distributed}, "DALA_RELEASE=#{inspect(value)}"
        :ok = Dist.stop()
      end
    end

    test "an EPMD whose start failed is not claimed", ctx do
      address = System.get_env("ERL_EPMD_ADDRESS")
      # epmd -daemon forks, exits 0, and the daemon then fails on this address.
      System.put_env("ERL_EPMD_ADDRESS", "not-an-address")

      on_exit(fn ->
        if address,
          do: System.put_env("ERL_EPMD_ADDRESS", address),
          else: System.delete_env("ERL_EPMD_ADDRESS")
      end)

      :ok = Dist.ensure_started(host_opts(ctx, epmd_timeout: 300))
      assert {:error, {:epmd_start, _}} = Dist.await(10_000)
      assert Dala.Dist.Table.get(:epmd, nil) == nil
      assert Dist.stop() == :ok
    end
  end
end
