defmodule DalaDemo.Cleanup do
  @moduledoc """
  Everything the demo starts is registered here right after it started, and `run/0` ends it
  all, newest first, on every path (success, a failed step, an exception), one timeline row
  each. (When the VM itself is killed, `DalaDemo.OsProcess`'s reaper ends the OS processes.)
  """

  alias DalaDemo.Timeline

  @doc "Registers `fun` (returning a text for the row, or anything) to end `what`."
  def defer(what, fun), do: Process.put(__MODULE__, [{what, fun} | Process.get(__MODULE__, [])])

  @doc "Runs every registered cleanup, newest first."
  def run do
    for {what, fun} <- Process.get(__MODULE__, []) do
      detail =
        try do
          case fun.() do
            text when is_binary(text) -> text
            _ -> "#{what}: ended"
          end
        catch
          kind, reason -> "#{what}: #{Exception.format_banner(kind, reason)}"
        end

      Timeline.event(:laptop, "cleanup", detail)
    end

    Process.put(__MODULE__, [])
    :ok
  end
end
