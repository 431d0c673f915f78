defmodule Dala.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    # Fail the start with the loader's own words when the native library is missing or broken.
    case Code.ensure_loaded(:dala_dist_nif) do
      {:module, _} ->
        # rest_for_one: the table (status, EPMD ownership) survives a crash of the server; the
        # server's attempt and stop work are linked to it and die with it. A restart costs
        # nothing (the status lives in the table), so a burst of them must not end the
        # application (which in a release ends the VM): 10 in 5 s rather than OTP's 3.
        children = [Dala.Dist.Table, Dala.Dist.Server]

        Supervisor.start_link(children,
          strategy: :rest_for_one,
          max_restarts: 10,
          max_seconds: 5,
          name: Dala.Supervisor
        )

      {:error, _} ->
        {:error, {:nif_not_loaded, nif_load_error()}}
    end
  end

  @doc false
  def nif_load_error do
    case :persistent_term.get({:dala_dist_nif, :load_error}, :none) do
      :none -> "failed to load NIF library #{:code.priv_dir(:dala)}/dala_dist_nif.so"
      message -> List.to_string(message)
    end
  end
end
