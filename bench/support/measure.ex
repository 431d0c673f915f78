defmodule DalaBench.Measure do
  @moduledoc """
  Clocks and CPU counters of the benchmark, read from the OS.

  CPU time is the sum of the first field of `/proc/self/task/*/schedstat` (nanoseconds on a CPU,
  per thread): `/proc/self/stat`'s utime + stime count 10 ms ticks, too coarse for 1 % of a core
  over a few seconds, so they are read too, as a cross-check. Both include the dirty IO threads,
  where the gate runs, which `:erlang.statistics(:runtime)` does not reliably count.
  """

  @doc "CPU time used so far by all threads of this OS process, in ns (schedstat)."
  @spec cpu_ns() :: non_neg_integer()
  def cpu_ns do
    "/proc/self/task"
    |> File.ls!()
    |> Enum.reduce(0, fn tid, acc ->
      case File.read("/proc/self/task/#{tid}/schedstat") do
        {:ok, text} -> acc + (text |> String.split() |> hd() |> String.to_integer())
        {:error, _} -> acc
      end
    end)
  end

  @doc "utime + stime of this OS process from /proc/self/stat, in ns; `hz` from `clock_ticks/0`."
  @spec stat_cpu_ns(pos_integer()) :: non_neg_integer()
  def stat_cpu_ns(hz) do
    text = File.read!("/proc/self/stat")
    # The command name (field 2) may hold spaces; fields after its closing paren are plain.
    [_, rest] = String.split(text, ") ", parts: 2)
    fields = String.split(rest)
    # rest starts at field 3 (state); utime and stime are fields 14 and 15.
    ticks = String.to_integer(Enum.at(fields, 11)) + String.to_integer(Enum.at(fields, 12))
    div(ticks * 1_000_000_000, hz)
  end

  @doc "The kernel's clock ticks per second (`getconf CLK_TCK`, usually 100)."
  @spec clock_ticks() :: pos_integer()
  def clock_ticks do
    case System.cmd("getconf", ["CLK_TCK"]) do
      {out, 0} -> out |> String.trim() |> String.to_integer()
      _ -> 100
    end
  end

  @doc """
  The OS monotonic clock (CLOCK_MONOTONIC on Linux) in ns: the clock dala_gate_bench stamps its
  events with, so the two can be subtracted.
  """
  @spec os_mono_ns() :: integer()
  def os_mono_ns do
    source = :erlang.system_info(:os_monotonic_time_source)
    {:time, t} = List.keyfind(source, :time, 0)
    {:resolution, res} = List.keyfind(source, :resolution, 0)
    div(t * 1_000_000_000, res)
  end

  @doc """
  Runs a 1 ms ticker (`receive after 1`) for `window_ms`; returns the largest gap between two
  ticks in µs and the number of ticks.
  """
  @spec ticker(pos_integer()) :: {non_neg_integer(), non_neg_integer()}
  def ticker(window_ms) do
    now = System.monotonic_time(:microsecond)
    tick(now, now + window_ms * 1000, 0, 0)
  end

  defp tick(last, stop, max_gap, count) do
    receive do
    after
      1 -> :ok
    end

    now = System.monotonic_time(:microsecond)
    max_gap = max(max_gap, now - last)
    if now >= stop, do: {max_gap, count + 1}, else: tick(now, stop, max_gap, count + 1)
  end

  @doc "Nearest-rank percentile (p in 0..100) of a non-empty list of numbers."
  @spec percentile([number()], number()) :: number()
  def percentile(values, p) do
    sorted = Enum.sort(values)
    rank = max(1, ceil(p / 100 * length(sorted)))
    Enum.at(sorted, rank - 1)
  end
end
