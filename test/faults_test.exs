defmodule Dala.FaultsTest do
  # Faults around a running or starting distribution, in this VM (private EPMD port, see
  # test_helper.exs), against real epmd daemons, real nodes and real sockets on loopback.
  # What lifecycle_test.exs already shows (a name in use, a busy dist port, stop/0 during the
  # delay and the gate, a dead tunnel) is not repeated here.
  use ExUnit.Case, async: false
  @moduletag :vm_dist

  import ExUnit.CaptureLog
  alias Dala.Dist
  alias Dala.Dist.Epmd
  alias Dala.Test.{DistCase, Net, Peer}

  @secret_var "DALA_FAULTS_TEST_SECRET"
  @app "faults_app"
  @alive2_req 120

  setup do
    DistCase.context(@secret_var, @app, "fault")
  end

  defp laptop_epmd, do: DistCase.laptop_epmd()

  defp android(ctx, opts \\ []) do
    Dist.ensure_started(
      [platform: :android, node: ctx.node, cookie: ctx.cookie, delay: 0, dist_port: ctx.dist_port] ++
        opts
    )
  end

  # Polls `fun` every 20 ms until it returns a truthy value, for at most `ms`.
  defp laptop_erpc(phone, epmd_port), do: Peer.laptop_erpc(phone, epmd_port, @secret_var, @app)

  describe "EPMD faults" do
    test "EPMD frozen, then killed while the gate waits, then restarted: the node starts", ctx do
      epmd = Net.start_epmd(ctx.epmd_port)
      # Frozen: the kernel still accepts connections, but nothing answers them.
      Net.signal_os(epmd, "STOP")
      :ok = android(ctx, epmd_timeout: 60_000)
      assert DistCase.eventually(fn -> Dist.status() == {:waiting, :epmd} end, 5_000)

      # The gate's attempt in flight is cut when epmd dies; the gate keeps waiting.
      Net.signal_os(epmd, "KILL")
      Net.stop_epmd(epmd)
      Process.sleep(300)
      assert Dist.status() == {:waiting, :epmd}
      refute Node.alive?()

      epmd = Net.start_epmd(ctx.epmd_port)
      on_exit(fn -> Net.stop_epmd(epmd) end)
      assert Dist.await(10_000) == {:ok, ctx.node}
      assert {:ok, ctx.dist_port} == Epmd.port_please(ctx.name)
    end

    test "the tunnel drops after the node started and comes back: the node is registered again",
         ctx do
      {laptop, _} = laptop_epmd()
      tunnel = Net.forwarder(ctx.epmd_port, laptop)
      :ok = android(ctx)
      assert Dist.await(5_000) == {:ok, ctx.node}
      assert Epmd.port_please(ctx.name, port: laptop) == {:ok, ctx.dist_port}

      # adb reverse goes away: the registration connection closes and EPMD forgets the node.
      Net.stop_listener(tunnel)

      assert DistCase.eventually(
               fn -> Epmd.port_please(ctx.name, port: laptop) == {:error, :not_registered} end,
               5_000
             )

      # Back again: OTP's erl_epmd retries the registration every 2 s (kernel 8.5,
      # erl_epmd.erl, ?RECONNECT_TIME), through the same tunnel port; our setup keeps that
      # working (same EPMD port, the node still alive).
      tunnel = Net.forwarder(ctx.epmd_port, laptop)

      assert DistCase.eventually(
               fn -> Epmd.port_please(ctx.name, port: laptop) == {:ok, ctx.dist_port} end,
               10_000
             )

      assert Dist.status() == {:started, ctx.node}
      assert laptop_erpc(ctx.node, laptop) =~ "erpc:'#{ctx.node}'"
      :ok = Dist.stop()
      Net.stop_listener(tunnel)
    end

    test "hostile listeners on the EPMD port: skipped at the deadline, and a later start works",
         ctx do
      fds = Net.open_fd_count()

      cases = [
        {"accepts and never answers", &Net.silent_listener/1, ":timeout"},
        {"answers garbage", &Net.garbage_listener(&1, "HTTP/1.1 400 Bad Request\r\n\r\n"),
         ":bad_reply"},
        {"closes mid-reply", &Net.half_reply_listener/1, ":closed"}
      ]

      for {what, start, last_error} <- cases do
        listener = start.(ctx.epmd_port)

        log =
          capture_log(fn ->
            :ok = android(ctx, epmd_timeout: 500)
            assert Dist.await(5_000) == {:error, :no_epmd}, what
          end)

        assert Dist.status() == {:skipped, :no_epmd}
        assert log =~ "no EPMD answered on 127.0.0.1:#{ctx.epmd_port} within 500 ms", what
        assert log =~ "last error: #{last_error}", what
        refute Node.alive?()
        Net.stop_listener(listener)
      end

      # The gate kept no socket.
      assert Net.open_fd_count() <= fds + 2

      # The VM runs on, and a real EPMD behind the same port is found by the next attempt.
      {laptop, _} = laptop_epmd()
      tunnel = Net.forwarder(ctx.epmd_port, laptop)
      :ok = android(ctx)
      assert Dist.await(5_000) == {:ok, ctx.node}
      :ok = Dist.stop()
      Net.stop_listener(tunnel)
    end
  end

  describe "stop/0" do
    test "in each skipped and failed state returns to :idle, and a new attempt works", ctx do
      {laptop, _} = laptop_epmd()

      states = [
        {{:skipped, :release},
         fn ->
           System.put_env("DALA_RELEASE", "1")
           :ok = android(ctx)
           System.delete_env("DALA_RELEASE")
         end},
        {{:skipped, :not_distributed}, fn -> :ok = Dist.ensure_started(platform: :ios) end},
        {{:skipped, :no_epmd},
         fn ->
           tunnel = Net.dead_tunnel(ctx.epmd_port)
           :ok = android(ctx, epmd_timeout: 200)
           _ = Dist.await(5_000)
           Net.stop_listener(tunnel)
         end},
        {{:failed, {:invalid_node, "DALA_NODE_SUFFIX: suffix is too long"}},
         fn ->
           System.put_env("DALA_NODE_SUFFIX", String.duplicate("x", 300))
           :ok = android(ctx)
           System.delete_env("DALA_NODE_SUFFIX")
         end},
        {{:failed, {:port_in_use, ctx.dist_port}},
         fn ->
           tunnel = Net.forwarder(ctx.epmd_port, laptop)
           {:ok, busy} = :gen_tcp.listen(ctx.dist_port, ip: {127, 0, 0, 1})
           :ok = android(ctx)
           _ = Dist.await(5_000)
           :gen_tcp.close(busy)
           Net.stop_listener(tunnel)
         end}
      ]

      for {expected, reach} <- states do
        capture_log(reach)

        case {expected, Dist.status()} do
          {{:failed, {:invalid_node, prefix}}, {:failed, {:invalid_node, message}}} ->
            assert String.starts_with?(message, prefix)

          {expected, status} ->
            assert status == expected
        end

        assert Dist.stop() == :ok
        assert Dist.status() == :idle
        assert Dist.await(0) == {:error, :idle}
        assert Dist.stop() == :ok
        assert Dala.Test.DistCase.work_processes() == []
        refute Node.alive?()
      end

      tunnel = Net.forwarder(ctx.epmd_port, laptop)
      :ok = android(ctx)
      assert Dist.await(5_000) == {:ok, ctx.node}
      :ok = Dist.stop()
      Net.stop_listener(tunnel)
    end

    test "while :net_kernel registers the name: the late start is stopped too", ctx do
      {laptop, _} = laptop_epmd()
      # The tunnel passes NAMES and PORT_PLEASE2 but holds the node's registration (ALIVE2),
      # so the attempt is inside :net_kernel.start/2 (kernel_sup starting net_sup) when
      # stop/0 comes.
      tunnel = Net.holding_forwarder(ctx.epmd_port, laptop, @alive2_req, self())
      :ok = android(ctx)
      assert_receive {:held, holder}, 5_000
      assert Dist.status() == {:waiting, :epmd}

      stopper = Task.async(fn -> Dist.stop() end)
      # stop/0 waits for kernel_sup, which is still busy starting distribution...
      assert Task.yield(stopper, 200) == nil
      # ...until the registration goes through after all, and distribution comes up...
      send(holder, :release)
      assert Task.await(stopper, 30_000) == :ok

      # ...and stop/0 must not leave it running behind an :idle status. which_children waits
      # for anything kernel_sup is still doing.
      _ = :supervisor.which_children(:kernel_sup)
      assert Dist.status() == :idle
      refute Node.alive?()

      assert DistCase.eventually(
               fn -> Epmd.port_please(ctx.name, port: laptop) != {:ok, ctx.dist_port} end,
               5_000
             )

      assert Dala.Test.DistCase.work_processes() == []

      # And it starts again normally.
      Net.stop_listener(tunnel)
      tunnel = Net.forwarder(ctx.epmd_port, laptop)
      :ok = android(ctx)
      assert Dist.await(5_000) == {:ok, ctx.node}
      :ok = Dist.stop()
      Net.stop_listener(tunnel)
    end
  end

  test "ensure_started/1 racing from 8 processes: one attempt, one node, every caller gets :ok",
       ctx do
    epmd = Net.start_epmd(ctx.epmd_port)
    on_exit(fn -> Net.stop_epmd(epmd) end)
    uniq = System.unique_integer([:positive])
    nodes = for i <- 1..8, do: :"racer#{i}_#{uniq}@127.0.0.1"
    test = self()

    racers =
      for node <- nodes do
        Task.async(fn ->
          send(test, {:ready, self()})

          receive do
            :go -> android(%{ctx | node: node})
          end
        end)
      end

    for _ <- racers, do: assert_receive({:ready, _})
    for %Task{pid: pid} <- racers, do: send(pid, :go)
    assert Enum.map(racers, &Task.await/1) == List.duplicate(:ok, 8)
    assert length(Dala.Test.DistCase.work_processes()) <= 1

    assert {:ok, winner} = Dist.await(5_000)
    assert winner in nodes
    assert {:ok, %{names: names}} = Epmd.names()
    registered = for {name, _} <- names, String.starts_with?(name, "racer"), do: name
    assert registered == [winner |> Atom.to_string() |> String.split("@") |> hd()]
    :ok = Dist.stop()
  end

  describe "logs" do
    defmodule Collector do
      # A :logger handler that sends every event it sees, formatted and raw, to a process:
      # what any handler (a file, a crash reporter) would be given.
      def log(event, %{config: %{to: pid}}) do
        {mod, conf} = :logger_formatter |> then(&{&1, %{single_line: true}})
        formatted = event |> mod.format(conf) |> IO.iodata_to_binary()

        send(
          pid,
          {:log_event, formatted, inspect(event, limit: :infinity, printable_limit: :infinity)}
        )
      end
    end

    setup do
      level = Logger.level()
      Logger.configure(level: :debug)

      :ok =
        :logger.add_handler(:dala_leak_check, Collector, %{level: :all, config: %{to: self()}})

      on_exit(fn ->
        :logger.remove_handler(:dala_leak_check)
        Logger.configure(level: level)
      end)
    end

    test "at :debug neither the secret nor the cookie appears in any log line or crash report",
         ctx do
      secret = "known-secret #{System.unique_integer([:positive])} for the leak check"
      System.put_env(@secret_var, secret)
      {laptop, _} = laptop_epmd()

      captured =
        capture_log([level: :debug], fn ->
          cookie = Dist.cookie_from_env(@secret_var, @app)
          send(self(), {:cookie, cookie})

          # A crash: the lifecycle server gets a call it does not know while an attempt (and
          # so the cookie) is pending; its supervisor logs a crash report and restarts it.
          :ok = android(%{ctx | cookie: cookie}, epmd_timeout: 60_000)
          assert DistCase.eventually(fn -> Dist.status() == {:waiting, :epmd} end, 5_000)
          server = Process.whereis(Dala.Dist.Server)
          ref = Process.monitor(server)
          catch_exit(GenServer.call(Dala.Dist.Server, {:unexpected, make_ref()}))
          assert_receive {:DOWN, ^ref, :process, ^server, _}

          assert DistCase.eventually(
                   fn -> Process.whereis(Dala.Dist.Server) not in [nil, server] end,
                   5_000
                 )

          assert DistCase.eventually(
                   fn -> Dala.Test.DistCase.work_processes() == [] end,
                   5_000
                 )

          # A run: start through the tunnel, the laptop attaches, stop.
          tunnel = Net.forwarder(ctx.epmd_port, laptop)
          :ok = android(%{ctx | cookie: cookie}, delay: 50)
          {:ok, node} = Dist.await(5_000)
          assert laptop_erpc(node, laptop) =~ "erpc:'#{node}'"
          :ok = Dist.stop()
          refute Node.alive?()

          # A failed attempt: the name is taken by another node.
          other = Peer.start(ctx.node, laptop)
          :ok = android(%{ctx | cookie: cookie})
          assert Dist.await(5_000) == {:error, {:name_in_use, ctx.node}}
          Peer.stop(other)
          :ok = Dist.stop()
          Net.stop_listener(tunnel)
          Logger.flush()
        end)

      assert_received {:cookie, cookie}
      hex = Atom.to_string(cookie)
      events = collect_events([])

      # The run was logged, crash report included, so the checks below looked at something.
      assert captured =~ "distribution started as #{ctx.node}"
      assert captured =~ "is already registered with EPMD"

      assert Enum.any?(events, fn {line, _raw} ->
               line =~ "Dala.Dist.Server" and line =~ "terminat"
             end)

      for text <- [captured | Enum.flat_map(events, fn {line, raw} -> [line, raw] end)] do
        refute text =~ secret
        refute text =~ hex
      end
    end
  end

  defp collect_events(acc) do
    receive do
      {:log_event, line, raw} -> collect_events([{line, raw} | acc])
    after
      200 -> Enum.reverse(acc)
    end
  end
end
