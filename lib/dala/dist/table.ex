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
  # True exactly once per `key` for the table's lifetime, however many processes ask at the same
  # time (ets:insert_new/2 is atomic). Without the table (the :dala application not started)
  # a persistent term keeps it to once per VM in practice.
  def first_time?(key) do
    :ets.insert_new(@table, {key, true})
  rescue
    ArgumentError ->
      pt_key = {__MODULE__, key}

      if :persistent_term.get(pt_key, false) do
        false
      else
        :persistent_term.put(pt_key, true)
        true
      end
  end

  @doc false
  # Only Dala.Dist.Server writes :status and :epmd.
  def put(key, value), do: :ets.insert(@table, {key, value})

  @impl true
  def init(nil) do
    :ets.new(@table, [:named_table, :public, :set, read_concurrency: true])
    {:ok, nil}
  end
end
