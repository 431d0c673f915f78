defmodule Mix.Dala do
  @moduledoc false
  # What the dala.* Mix tasks share.

  @doc false
  # The NIF must be built for the tasks to derive a cookie or ask EPMD. From the command line
  # Mix has compiled already (to find the task) and this is a no-op; from an alias or another
  # task it may not have, and then its progress lines must not reach stdout.
  @spec compile_quietly() :: term()
  def compile_quietly do
    shell = Mix.shell()
    Mix.shell(Mix.Shell.Quiet)

    try do
      Mix.Task.run("compile", [])
    after
      Mix.shell(shell)
    end
  end

  @doc false
  # The laptop's EPMD port; a bad ERL_EPMD_PORT stops the task with one sentence naming it.
  @spec epmd_port!() :: :inet.port_number()
  def epmd_port! do
    Dala.Laptop.epmd_port()
  rescue
    e in ArgumentError -> Mix.raise(Exception.message(e))
  end
end
