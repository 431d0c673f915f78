# A separate VM for one measurement of bench/gate_bench.exs (started by it, ends by itself):
#
#   elixir [--erl "+S 1"] -pa DALA_EBIN bench/support/worker.exs cpu|ticker IMPL PORT WINDOW_MS
#
# IMPL is `idle` (nothing waits), `gate` (Dala.Dist.Epmd.wait/2) or `baseline`. The wait starts,
# runs 300 ms to settle, then for WINDOW_MS this VM measures either its own CPU time (`cpu`) or
# the largest gap of a 1 ms ticker (`ticker`). Prints one line "result KEY=VALUE ..." and halts.
Code.require_file("baseline.ex", __DIR__)
Code.require_file("measure.ex", __DIR__)

alias DalaBench.{Baseline, Measure}

[mode, impl, port, window] = System.argv()
port = String.to_integer(port)
window = String.to_integer(window)
if port == 4369, do: raise("the benchmark never uses port 4369")

parent = self()
long = window + 60_000

waiter =
  case impl do
    "idle" ->
      nil

    "gate" ->
      gate = Dala.Dist.Epmd.new_gate()

      spawn(fn ->
        send(parent, {:verdict, Dala.Dist.Epmd.wait_gate(gate, long, port: port)})
      end)

      {:gate, gate}

    "baseline" ->
      {:baseline, spawn(fn -> send(parent, {:verdict, Baseline.wait(port, 3_600_000)}) end)}
  end

hz = Measure.clock_ticks()
Process.sleep(300)

result =
  case mode do
    "cpu" ->
      {c0, s0, w0} = {Measure.cpu_ns(), Measure.stat_cpu_ns(hz), Measure.os_mono_ns()}
      Process.sleep(window)
      {c1, s1, w1} = {Measure.cpu_ns(), Measure.stat_cpu_ns(hz), Measure.os_mono_ns()}
      "cpu_ns=#{c1 - c0} stat_cpu_ns=#{s1 - s0} wall_ns=#{w1 - w0}"

    "ticker" ->
      {max_gap_us, ticks} = Measure.ticker(window)
      "max_gap_us=#{max_gap_us} ticks=#{ticks} schedulers=#{:erlang.system_info(:schedulers)}"
  end

# A wait that ended inside the window (it should not: nothing answers) would void the number.
verdict =
  receive do
    {:verdict, v} -> "ended_early=#{elem(v, 0)}"
  after
    0 -> "ended_early=no"
  end

case waiter do
  {:gate, gate} -> Dala.Dist.Epmd.cancel(gate)
  {:baseline, pid} -> Process.exit(pid, :kill)
  nil -> :ok
end

IO.puts("result #{result} #{verdict}")
System.halt(0)
