defmodule Dala.Dist.Table do
  @moduledoc false
  # Owns the ETS table where Dala.Dist.Server publishes the status and the EPMD this VM
  # started. It is the first child of Dala.Supervisor (rest_for_one), so the table outlives
  # restarts of the server: status/0 answers while the server restarts, and a new server
  # inherits the EPMD the previous one started (and so still ends it).
  use GenServer

  @table __MODULE__

  @doc false
  def start_link(_arg), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @doc false
  # The value under `key`, or `default` (also when the application is not running).
  def get(key, default) do
    case :ets.lookup(@table, key) do
      [{^key, value}] -> value
      [] -> default
    end
  rescue
    ArgumentError -> default
  end

  @doc false
  # Only Dala.Dist.Server writes.
  def put(key, value), do: :ets.insert(@table, {key, value})

  @impl true
  def init(nil) do
    :ets.new(@table, [:named_table, :public, :set, read_concurrency: true])
    {:ok, nil}
  end
end
