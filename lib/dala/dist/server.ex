defmodule Dala.Dist.Server do
  @moduledoc false
  # PLACEHOLDER: the lifecycle state machine (issue 6).
  use GenServer
  def start_link(_), do: GenServer.start_link(__MODULE__, :idle, name: __MODULE__)
  @impl true
  def init(state), do: {:ok, state}
end
