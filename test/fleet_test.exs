defmodule Dala.FleetTest do
  # A fleet of "phones" of one app, each a separate OS-process BEAM with its own
  # DALA_NODE_SUFFIX and dist port, starting distribution through one real EPMD at the same
  # time, as `Dala.Dist.ensure_started(platform: :android, delay: 0, ...)` would on devices
  # behind `adb reverse`. This VM is the laptop: it attaches to every phone with the cookie
  # derived from the same secret.
  #
  # DALA_FLEET_SIZE sets the number of phones (default 10, what CI runs); `make fleet` runs 50.
  # Excluded with `mix test --exclude fleet`.
  use ExUnit.Case, async: false
  @moduletag :vm_dist
  @moduletag :fleet
  @moduletag timeout: 900_000

  alias Dala.Dist
  alias Dala.Dist.Epmd
  alias Dala.Test.{Net, Peer}

  @app "fleet_app"
  @secret_var "DALA_FLEET_SECRET"

  setup do
    Dist.stop()
    epmd_port = Epmd.port()
    refute epmd_port == 4369
    # The one EPMD of the fleet: on this VM's EPMD port, so the laptop (this VM) uses it too.
    epmd = Net.start_epmd(epmd_port)
    secret = Base.encode64(:crypto.strong_rand_bytes(24))
    System.put_env(@secret_var, secret)

    on_exit(fn ->
      Dist.stop()
      System.delete_env(@secret_var)
      Net.stop_epmd(epmd)
    end)

    %{epmd_port: epmd_port, secret: secret}
  end

  defp fleet_size do
    case Integer.parse(System.get_env("DALA_FLEET_SIZE", "10")) do
      {n, ""} when n in 1..200 -> n
      _ -> flunk("DALA_FLEET_SIZE must be an integer in 1..200")
    end
  end

  defp distinct_free_ports(n, acc \\ MapSet.new()) do
    if MapSet.size(acc) == n,
      do: MapSet.to_list(acc),
      else: distinct_free_ports(n, MapSet.put(acc, Net.free_port()))
  end

  # Boots a phone: a plain (non-distributed) BEAM with this build of dala that starts
  # distribution through the library and prints the outcome of await/1 and the status, then
  # stays up.
  defp boot_phone(suffix, dist_port, ctx) do
    eval = """
    {ok, _} = application:ensure_all_started(dala),
    C = 'Elixir.Dala.Dist':cookie_from_env(<<"#{@secret_var}">>, <<"#{@app}">>),
    ok = 'Elixir.Dala.Dist':ensure_started([{platform, android}, {delay, 0},
      {node, '#{@app}@127.0.0.1'}, {cookie, C}, {dist_port, #{dist_port}}]),
    R = 'Elixir.Dala.Dist':await(300000),
    io:format("result:~w~n", [{R, 'Elixir.Dala.Dist':status()}]),
    receive never -> ok end.
    """

    # One scheduler of each kind: 50 of these share 2 cores.
    args =
      ["-noshell", "+S", "1:1", "+SDcpu", "1:1", "+SDio", "1", "+A", "1"] ++
        Peer.code_paths() ++ ["-eval", eval]

    env =
      for {k, v} <- [
            {"ERL_EPMD_PORT", Integer.to_string(ctx.epmd_port)},
            {"DALA_NODE_SUFFIX", suffix},
            {@secret_var, ctx.secret}
          ],
          do: {String.to_charlist(k), String.to_charlist(v)}

    port =
      Port.open({:spawn_executable, System.find_executable("erl")}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        {:line, 4096},
        args: args,
        env: env
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    on_exit(fn -> Dala.Test.Net.signal_if(os_pid, "KILL", "beam") end)
    port
  end

  # The result line of each phone (port => term as text), within `ms`.
  defp collect_results(ports, ms) do
    deadline = System.monotonic_time(:millisecond) + ms
    collect_results(MapSet.new(ports), %{}, deadline)
  end

  defp collect_results(pending, acc, deadline) do
    if MapSet.size(pending) == 0 do
      acc
    else
      left = max(deadline - System.monotonic_time(:millisecond), 0)

      receive do
        {port, {:data, {:eol, "result:" <> result}}} ->
          collect_results(MapSet.delete(pending, port), Map.put(acc, port, result), deadline)

        {port, {:exit_status, status}} ->
          if MapSet.member?(pending, port),
            do: flunk("a phone exited with status #{status} before its result"),
            else: collect_results(pending, acc, deadline)

        {_port, {:data, _line}} ->
          collect_results(pending, acc, deadline)
      after
        left -> flunk("#{MapSet.size(pending)} phones gave no result in time")
      end
    end
  end

  test "a fleet of phones registers under distinct names, the laptop reaches every one, a duplicate is refused",
       ctx do
    n = fleet_size()
    dist_ports = distinct_free_ports(n + 1)
    {fleet_ports, [dup_port]} = Enum.split(dist_ports, n)
    suffixes = for i <- 1..n, do: "device-#{i}"

    t0 = System.monotonic_time(:millisecond)

    phones =
      for {suffix, dist_port} <- Enum.zip(suffixes, fleet_ports) do
        {boot_phone(suffix, dist_port, ctx), suffix, dist_port}
      end

    results = collect_results(Enum.map(phones, &elem(&1, 0)), 600_000)
    started_ms = System.monotonic_time(:millisecond) - t0

    expected =
      for {port, suffix, _} <- phones, into: %{}, do: {port, :"#{@app}_#{suffix}@127.0.0.1"}

    for {port, node} <- expected do
      assert results[port] == "{{ok,'#{node}'},{started,'#{node}'}}"
    end

    # All registered with the one EPMD, under distinct names, each on its own dist port.
    {:ok, %{names: names}} = Epmd.names()

    fleet =
      for {name, port} <- names,
          String.starts_with?(name, @app <> "_"),
          into: %{},
          do: {name, port}

    assert fleet ==
             Map.new(Enum.zip(suffixes, fleet_ports), fn {s, p} -> {"#{@app}_#{s}", p} end)

    # The laptop attaches to every phone and gets an :erpc answer.
    {:ok, _} = :net_kernel.start(:"fleet_laptop@127.0.0.1", %{name_domain: :longnames})
    Node.set_cookie(Dist.cookie_from_env(@secret_var, @app))

    answers =
      expected
      |> Map.values()
      |> Task.async_stream(&{&1, :erpc.call(&1, Dala.Dist, :status, [], 30_000)},
        timeout: 60_000,
        max_concurrency: 10
      )
      |> Enum.map(fn {:ok, answer} -> answer end)

    for {node, status} <- answers, do: assert(status == {:started, node})
    assert length(answers) == n
    answered_ms = System.monotonic_time(:millisecond) - t0

    # One more phone with a suffix already in use: refused before it starts distribution.
    dup = boot_phone(hd(suffixes), dup_port, ctx)
    %{^dup => dup_result} = collect_results([dup], 120_000)
    dup_node = "'#{@app}_#{hd(suffixes)}@127.0.0.1'"
    assert dup_result == "{{error,{name_in_use,#{dup_node}}},{failed,{name_in_use,#{dup_node}}}}"

    IO.puts(
      "\nfleet of #{n}: all started #{started_ms} ms after launch, " <>
        "all answered the laptop's :erpc #{answered_ms} ms after launch"
    )

    :net_kernel.stop()
  end
end
