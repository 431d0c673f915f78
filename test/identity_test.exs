defmodule Dala.Dist.IdentityTest do
  # Not async: several tests set OS environment variables and the :kernel env.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog

  alias Dala.Dist.Identity
  alias Dala.Test.Net

  @env_vars ["DALA_NODE_SUFFIX", "dala_NODE_SUFFIX", "DALA_DIST_PORT"]
  @kernel_keys [:inet_dist_listen_min, :inet_dist_listen_max, :inet_dist_use_interface]

  setup do
    saved_env = Map.new(@env_vars, &{&1, System.get_env(&1)})
    saved_kernel = Map.new(@kernel_keys, &{&1, Application.fetch_env(:kernel, &1)})
    Enum.each(@env_vars, &System.delete_env/1)

    on_exit(fn ->
      Enum.each(saved_env, fn
        {var, nil} -> System.delete_env(var)
        {var, value} -> System.put_env(var, value)
      end)

      Enum.each(saved_kernel, fn
        {key, :error} -> Application.delete_env(:kernel, key)
        {key, {:ok, value}} -> Application.put_env(:kernel, key, value)
      end)
    end)
  end

  defp resolve(base), do: Identity.apply_suffix(base, Identity.suffix_from_env())

  defp unique, do: "u#{System.unique_integer([:positive])}x#{:rand.uniform(1_000_000_000)}"

  describe "apply_suffix/2" do
    test "the issue's examples" do
      assert Dala.Dist.apply_suffix(:"my_app@127.0.0.1", "zy22cr") == :"my_app_zy22cr@127.0.0.1"
      assert Dala.Dist.apply_suffix(:my_app, "zy22cr") == :my_app_zy22cr

      assert Dala.Dist.apply_suffix(:"my_app@127.0.0.1", "emulator-5554") ==
               :"my_app_emulator-5554@127.0.0.1"

      assert Dala.Dist.apply_suffix(:"my_app@127.0.0.1", "192.168.1.20:5555") ==
               :"my_app_192_168_1_20_5555@127.0.0.1"

      assert Dala.Dist.apply_suffix(:"test_nif_android@127.0.0.1", "zy22cr") ==
               :"test_nif_android_zy22cr@127.0.0.1"
    end

    test "nil, empty and whitespace-only suffixes leave the node unchanged" do
      for suffix <- [nil, "", " ", "\t\r\n  "] do
        assert Dala.Dist.apply_suffix(:"my_app@127.0.0.1", suffix) == :"my_app@127.0.0.1"
        assert Dala.Dist.apply_suffix(:my_app, suffix) == :my_app
      end
    end

    test "the suffix is trimmed and sanitised" do
      assert Dala.Dist.apply_suffix(:"my_app@127.0.0.1", "  zy22cr\n") ==
               :"my_app_zy22cr@127.0.0.1"

      assert Dala.Dist.apply_suffix(:my_app@h, "a b/c") == :my_app_a_b_c@h
      assert Dala.Dist.apply_suffix(:my_app@h, "café") == :my_app_caf__@h
    end

    test "a base with a Latin-1 host keeps its host" do
      assert Dala.Dist.apply_suffix(:a@hôte, "s") == :a_s@hôte
    end

    test "the result is limited to 255 characters" do
      ok = Dala.Dist.apply_suffix(:a@h, String.duplicate("s", 251))
      assert String.length(Atom.to_string(ok)) == 255

      assert_raise ArgumentError,
                   "suffix is too long: 252 bytes after trimming would make the node 256 " <>
                     "characters, at most 255 allowed",
                   fn -> Dala.Dist.apply_suffix(:a@h, String.duplicate("s", 252)) end
    end

    test "a 1 MB suffix is rejected with its size, not echoed" do
      error =
        assert_raise ArgumentError, fn ->
          Dala.Dist.apply_suffix(:"my_app@127.0.0.1", String.duplicate("x", 1_048_576))
        end

      assert error.message ==
               "suffix is too long: 1048576 bytes after trimming would make the node 1048593 " <>
                 "characters, at most 255 allowed"
    end

    test "an invalid base is rejected, with or without a suffix" do
      for suffix <- [nil, "", "zy22cr"] do
        assert_raise ArgumentError,
                     "base_node name part must match [A-Za-z0-9_-]+, got invalid byte 0x20 at position 2",
                     fn -> Dala.Dist.apply_suffix(:"my app@127.0.0.1", suffix) end
      end

      assert_raise ArgumentError, "base_node host must not be empty", fn ->
        Dala.Dist.apply_suffix(:my_app@, "x")
      end

      assert_raise ArgumentError,
                   "base_node host must contain only characters U+0021..U+00FF, got U+0105 at position 3",
                   fn -> Dala.Dist.apply_suffix(:a@hą, "x") end
    end

    test "rejected input creates no atom" do
      for base <- [:"my app@127.0.0.1", :a@hą, :a@b@c, :"x@h st"] do
        suffix = unique()
        [name | host] = String.split(Atom.to_string(base), "@", parts: 2)
        would_be = Enum.join([name <> "_" <> suffix | host], "@")

        assert_raise ArgumentError, fn -> Dala.Dist.apply_suffix(base, suffix) end
        assert_raise ArgumentError, fn -> String.to_existing_atom(would_be) end
      end
    end

    test "a valid result is an atom made from the name" do
      suffix = unique()
      node = Dala.Dist.apply_suffix(:"my_app@127.0.0.1", suffix)
      assert node == String.to_existing_atom("my_app_#{suffix}@127.0.0.1")
    end

    test "arguments of the wrong type raise naming the argument" do
      assert_raise ArgumentError, ~s(base_node must be an atom, got: "my_app@h"), fn ->
        Dala.Dist.apply_suffix("my_app@h", "x")
      end

      assert_raise ArgumentError, "base_node must be an atom, got: nil", fn ->
        Dala.Dist.apply_suffix(nil, "x")
      end

      assert_raise ArgumentError, "suffix must be a string or nil, got: :zy22cr", fn ->
        Dala.Dist.apply_suffix(:my_app, :zy22cr)
      end

      assert_raise ArgumentError, "suffix must be a string or nil, got: 'zy'", fn ->
        Dala.Dist.apply_suffix(:my_app, 'zy')
      end
    end
  end

  describe "the node rules (the core, through the NIF)" do
    test "accepts valid nodes and names what is wrong otherwise" do
      assert :dala_dist_nif.validate_node("my_app@127.0.0.1") == :ok
      assert :dala_dist_nif.validate_node("my_app") == :ok
      assert :dala_dist_nif.validate_node(String.duplicate("a", 255)) == :ok

      assert_raise ArgumentError,
                   "node must contain at most one '@', got another at position 3",
                   fn -> :dala_dist_nif.validate_node("a@b@c") end
    end

    test "the NIF counts characters, not bytes, and raises for 256" do
      # 255 characters in 256 bytes is fine; 256 characters is not.
      assert :dala_dist_nif.validate_node("a@" <> String.duplicate("h", 252) <> "é") == :ok

      assert_raise ArgumentError, "node must be at most 255 characters, got 256", fn ->
        :dala_dist_nif.validate_node("a@" <> String.duplicate("h", 253) <> "é")
      end

      assert_raise ArgumentError, "node must be a binary", fn ->
        :dala_dist_nif.validate_node(:a)
      end
    end
  end

  describe "suffix_from_env/0 and the suffixed node" do
    test "no variable set gives nil and an unchanged node" do
      assert Identity.suffix_from_env() == nil
      assert resolve(:"my_app@127.0.0.1") == :"my_app@127.0.0.1"
    end

    test "DALA_NODE_SUFFIX is read" do
      System.put_env("DALA_NODE_SUFFIX", "zy22cr")
      assert Identity.suffix_from_env() == "zy22cr"
      assert resolve(:"my_app@127.0.0.1") == :"my_app_zy22cr@127.0.0.1"
    end

    test "the seed page's dala_NODE_SUFFIX is honoured" do
      System.put_env("dala_NODE_SUFFIX", "emulator-5554")
      assert Identity.suffix_from_env() == "emulator-5554"

      assert resolve(:"my_app@127.0.0.1") == :"my_app_emulator-5554@127.0.0.1"
    end

    test "DALA_NODE_SUFFIX wins when both are set" do
      System.put_env("DALA_NODE_SUFFIX", "upper")
      System.put_env("dala_NODE_SUFFIX", "lower")
      assert Identity.suffix_from_env() == "upper"
      assert resolve(:my_app) == :my_app_upper
    end

    test "a blank DALA_NODE_SUFFIX does not hide dala_NODE_SUFFIX" do
      System.put_env("DALA_NODE_SUFFIX", "  ")
      assert Identity.suffix_from_env() == nil
      System.put_env("dala_NODE_SUFFIX", "lower")
      assert Identity.suffix_from_env() == "lower"
    end

    test "an explicit suffix overrides the environment" do
      System.put_env("DALA_NODE_SUFFIX", "fromenv")
      assert Identity.apply_suffix(:my_app, nil) == :my_app
      assert Identity.apply_suffix(:my_app, "zy22cr") == :my_app_zy22cr
    end
  end

  describe "resolve_dist_port/2" do
    test "the option wins over the environment" do
      System.put_env("DALA_DIST_PORT", "9200")
      assert Identity.resolve_dist_port(9300, :"my_app@127.0.0.1") == 9300
    end

    test "the default is 9100" do
      assert Identity.resolve_dist_port(nil, :"my_app@127.0.0.1") == 9100
    end

    test "good DALA_DIST_PORT values are used without a warning" do
      for {value, port} <- [{"9200", 9200}, {"1", 1}, {"65535", 65535}, {" 9201\n", 9201}] do
        System.put_env("DALA_DIST_PORT", value)

        log =
          capture_log(fn ->
            assert Identity.resolve_dist_port(nil, :"my_app@127.0.0.1") == port
          end)

        refute log =~ "DALA_DIST_PORT"
      end
    end

    test "bad DALA_DIST_PORT values are ignored with one warning naming the variable" do
      bad = ["", "0", "65536", "-1", "+9200", "9200x", "92 00", "abc", "1e3", "999999"]

      for value <- bad do
        System.put_env("DALA_DIST_PORT", value)

        log =
          capture_log(fn ->
            assert Identity.resolve_dist_port(nil, :"my_app@127.0.0.1") == 9100
          end)

        assert log =~ "[warning]"

        assert log =~
                 "DALA_DIST_PORT must be an integer in 1..65535 or \"auto\", got #{inspect(value)}"

        assert log =~ "using 9100"
        assert length(Regex.scan(~r/DALA_DIST_PORT must be/, log)) == 1
      end
    end

    test "a huge bad value is not echoed in full" do
      System.put_env("DALA_DIST_PORT", String.duplicate("9", 10_000))

      log =
        capture_log(fn -> assert Identity.resolve_dist_port(nil, :"my_app@127.0.0.1") == 9100 end)

      assert log =~ "DALA_DIST_PORT must be an integer"
      assert byte_size(log) < 500
    end
  end

  describe "dist_listen_env/2" do
    test "sets min and max to the port and the interface as inet_tcp_dist reads them" do
      assert Identity.dist_listen_env(9123, {127, 0, 0, 1}) == :ok
      assert Application.fetch_env(:kernel, :inet_dist_listen_min) == {:ok, 9123}
      assert Application.fetch_env(:kernel, :inet_dist_listen_max) == {:ok, 9123}
      assert Application.fetch_env(:kernel, :inet_dist_use_interface) == {:ok, {127, 0, 0, 1}}
    end

    test "a nil interface removes the one this library set" do
      assert Identity.dist_listen_env(9125, {127, 0, 0, 1}) == :ok
      assert Identity.dist_listen_env(9124, nil) == :ok
      assert Application.fetch_env(:kernel, :inet_dist_use_interface) == :error
      assert Application.fetch_env(:kernel, :inet_dist_listen_min) == {:ok, 9124}
    end

    test "a nil interface leaves the user's own kernel setting alone" do
      Application.delete_env(:dala, :dist_interface_set)
      Application.put_env(:kernel, :inet_dist_use_interface, {127, 0, 0, 1})
      assert Identity.dist_listen_env(9124, nil) == :ok
      assert Application.fetch_env(:kernel, :inet_dist_use_interface) == {:ok, {127, 0, 0, 1}}
    end

    @tag :distribution
    test "a real node started after it listens on that port and interface only" do
      epmd_port = Net.free_port()
      epmd = Net.start_epmd(epmd_port)
      on_exit(fn -> Net.stop_epmd(epmd) end)

      # Bound to 127.0.0.1: reachable there, refused on 127.0.0.2 (also loopback).
      port = Net.free_port()
      {child, os_pid} = start_node_with_listen_env(epmd_port, port, {127, 0, 0, 1})
      on_exit(fn -> kill_os_pid(os_pid, "identity_test_") end)
      assert_ready(child)
      assert {:ok, s} = :gen_tcp.connect({127, 0, 0, 1}, port, [], 2_000)
      :gen_tcp.close(s)
      assert :gen_tcp.connect({127, 0, 0, 2}, port, [], 2_000) == {:error, :econnrefused}
      assert Identity.check_port_free(port, {127, 0, 0, 1}) == {:error, {:port_in_use, port}}
      stop_node(child, os_pid)

      # No interface: bound to all addresses, so 127.0.0.2 answers too.
      port2 = Net.free_port()
      {child2, os_pid2} = start_node_with_listen_env(epmd_port, port2, nil)
      on_exit(fn -> kill_os_pid(os_pid2, "identity_test_") end)
      assert_ready(child2)
      assert {:ok, s2} = :gen_tcp.connect({127, 0, 0, 2}, port2, [], 2_000)
      :gen_tcp.close(s2)
      stop_node(child2, os_pid2)
    end
  end

  describe "check_port_free/2" do
    test "a port bound by the test is in use, and free again once closed" do
      {:ok, listener} = :gen_tcp.listen(0, ip: {127, 0, 0, 1}, reuseaddr: true)
      {:ok, port} = :inet.port(listener)

      assert Identity.check_port_free(port, {127, 0, 0, 1}) == {:error, {:port_in_use, port}}
      # All interfaces include 127.0.0.1.
      assert Identity.check_port_free(port, nil) == {:error, {:port_in_use, port}}
      # Another loopback address is a different socket address.
      assert Identity.check_port_free(port, {127, 0, 0, 2}) == :ok

      :ok = :gen_tcp.close(listener)
      assert Identity.check_port_free(port, {127, 0, 0, 1}) == :ok
      assert Identity.check_port_free(port, nil) == :ok
    end

    test "the probe socket is closed at once" do
      port = Net.free_port()
      assert Identity.check_port_free(port, {127, 0, 0, 1}) == :ok
      assert Identity.check_port_free(port, {127, 0, 0, 1}) == :ok
      assert {:ok, l} = :gen_tcp.listen(port, ip: {127, 0, 0, 1})
      :gen_tcp.close(l)
    end

    test "a port held only by a TIME_WAIT connection is free, as for inet_tcp_dist (reuseaddr)" do
      {:ok, listener} = :gen_tcp.listen(0, ip: {127, 0, 0, 1}, reuseaddr: true, active: false)
      {:ok, port} = :inet.port(listener)
      {:ok, client} = :gen_tcp.connect({127, 0, 0, 1}, port, active: false)
      {:ok, server} = :gen_tcp.accept(listener, 2_000)
      # The side that closes first keeps the TIME_WAIT state on `port`.
      :ok = :gen_tcp.close(server)
      assert {:error, :closed} = :gen_tcp.recv(client, 0, 2_000)
      :ok = :gen_tcp.close(client)
      :ok = :gen_tcp.close(listener)

      # Without SO_REUSEADDR the bind fails, so the TIME_WAIT is really there.
      assert :gen_tcp.listen(port, ip: {127, 0, 0, 1}) == {:error, :eaddrinuse}
      assert Identity.check_port_free(port, {127, 0, 0, 1}) == :ok
    end

    test "an address that is not on this host is reported as unavailable, not in use" do
      port = Net.free_port()

      assert Identity.check_port_free(port, {192, 0, 2, 1}) ==
               {:error, {:port_unavailable, port, :eaddrnotavail}}
    end
  end

  # A separate BEAM that calls dist_listen_env/2 and then starts :net_kernel.
  defp start_node_with_listen_env(epmd_port, port, interface) do
    name = "identity_test_#{System.unique_integer([:positive])}@127.0.0.1"

    paths =
      Enum.flat_map([:elixir, :logger, :dala], &["-pa", to_string(:code.lib_dir(&1, :ebin))])

    eval = """
    ok = 'Elixir.Dala.Dist.Identity':dist_listen_env(#{port}, #{inspect(interface)}),
    case net_kernel:start(['#{name}', longnames]) of
      {ok, _} -> io:format("ready~n");
      Error -> io:format("failed ~p~n", [Error])
    end.
    """

    child =
      Port.open({:spawn_executable, System.find_executable("erl")}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        env: [{'ERL_EPMD_PORT', to_charlist(epmd_port)}],
        args: ["-noshell", "-start_epmd", "false" | paths] ++ ["-eval", eval]
      ])

    {:os_pid, os_pid} = Port.info(child, :os_pid)
    {child, os_pid}
  end

  defp assert_ready(child, acc \\ "") do
    receive do
      {^child, {:data, data}} ->
        out = acc <> data

        cond do
          out =~ "ready\n" -> :ok
          out =~ "failed" -> flunk("node did not start: #{out}")
          true -> assert_ready(child, out)
        end

      {^child, {:exit_status, status}} ->
        flunk("node exited with #{status}: #{acc}")
    after
      15_000 -> flunk("node did not start: #{acc}")
    end
  end

  # Kills an OS process this test started, only while its command line still
  # shows it is ours (the pid may be gone or reused by then in on_exit).
  defp kill_os_pid(os_pid, marker) do
    case File.read("/proc/#{os_pid}/cmdline") do
      {:ok, cmdline} ->
        if cmdline =~ marker do
          System.cmd("kill", [Integer.to_string(os_pid)], stderr_to_stdout: true)
        end

      {:error, _} ->
        :ok
    end

    :ok
  end

  # Stops a child node and waits for it to exit.
  defp stop_node(child, os_pid) do
    kill_os_pid(os_pid, "identity_test_")

    receive do
      {^child, {:exit_status, _}} -> :ok
    after
      10_000 -> flunk("node #{os_pid} did not exit")
    end
  end
end
