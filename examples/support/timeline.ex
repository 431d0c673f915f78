defmodule DalaDemo.Timeline do
  @moduledoc """
  The demo's output: one row per event, with the milliseconds since the demo started.

  Times are the machine's wall clock in microseconds (`System.os_time/1`), which the laptop
  and the phone (separate OS processes on the same machine) share, so an event the phone
  stamps lands in the same timeline.
  """

  @doc "Starts the clock and prints the header."
  def start(title) do
    :persistent_term.put({__MODULE__, :t0}, now())
    IO.puts(title)
    IO.puts("")
    IO.puts("      ms  side    phase         detail")
  end

  @doc "The current time, in the timeline's unit."
  def now, do: System.os_time(:microsecond)

  @doc "Milliseconds since `start/1`, for a time taken with `now/0`."
  def ms(at), do: (at - :persistent_term.get({__MODULE__, :t0})) / 1000

  @doc "Prints one row: who (`:laptop` or `:phone`), which phase, what happened."
  def event(side, phase, detail, at \\ now()) do
    ms = :erlang.float_to_binary(ms(at), decimals: 1)

    IO.puts(
      "#{String.pad_leading(ms, 8)}  #{String.pad_trailing(to_string(side), 6)}  #{String.pad_trailing(phase, 12)}  #{detail}"
    )

    at
  end
end
