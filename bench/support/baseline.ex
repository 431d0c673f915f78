defmodule DalaBench.Baseline do
  @moduledoc """
  The comparison point: the field's published EPMD wait, written out as published.

  Connect to 127.0.0.1:port with a 200 ms timeout. A connect that succeeds is "ready" (the
  socket is closed at once, nothing is asked). On failure, sleep 500 ms and charge 700 ms to the
  budget (10 s in the field), whatever the attempt really took; stop when the budget is spent.
  """

  @connect_timeout_ms 200
  @sleep_ms 500
  @charge_ms 700

  @doc "Returns `{:ready, attempts}` or `{:timeout, attempts}`."
  @spec wait(:inet.port_number(), non_neg_integer()) ::
          {:ready, pos_integer()} | {:timeout, non_neg_integer()}
  def wait(port, budget_ms), do: loop(port, budget_ms, 0)

  defp loop(_port, budget, attempts) when budget <= 0, do: {:timeout, attempts}

  defp loop(port, budget, attempts) do
    case :gen_tcp.connect({127, 0, 0, 1}, port, [:binary, active: false], @connect_timeout_ms) do
      {:ok, socket} ->
        :gen_tcp.close(socket)
        {:ready, attempts + 1}

      {:error, _reason} ->
        Process.sleep(@sleep_ms)
        loop(port, budget - @charge_ms, attempts + 1)
    end
  end
end
