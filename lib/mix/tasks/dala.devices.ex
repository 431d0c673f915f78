defmodule Mix.Tasks.Dala.Devices do
  @shortdoc "Lists the nodes in the laptop's EPMD, their ports, devices and adb tunnels"
  @moduledoc """
  What the laptop's EPMD (`127.0.0.1:<ERL_EPMD_PORT>`, else 4369) holds, one line a node:

      mix dala.devices [--app APP]

      EPMD 127.0.0.1:4369: 2 nodes
      adb: devices emulator-5554, R58M12ABC; reverse tcp:4369 on emulator-5554, R58M12ABC
      my_app_emulator-5554  port 9680 (auto)  answers     device emulator-5554  forward emulator-5554
      my_app_R58M12ABC      port 9100         no answer   device R58M12ABC  forward none

  Each line: the node's name; its dist port (`(auto)` when it is the port
  `Dala.Dist.Port.auto/1` derives for that name); whether something answers on
  `127.0.0.1:<port>` (`answers`, `closes` for a tunnel with no listener behind it, or
  `no answer`); and, where `adb` is available (`DALA_ADB`, else `adb` on `PATH`), the device
  whose serial makes that name and the device the port is forwarded to. Ports registered by two
  nodes are flagged `SHARED PORT`. `--app APP` keeps the nodes of one app (`APP` and
  `APP_<suffix>`).

  Exits 1 with one sentence when the laptop's EPMD is not running.
  """
  use Mix.Task

  alias Dala.Laptop

  @impl Mix.Task
  def run(args) do
    app =
      case OptionParser.parse(args, strict: [app: :string]) do
        {opts, [], []} -> opts[:app]
        _ -> Mix.raise("usage: mix dala.devices [--app APP]")
      end

    Mix.Dala.compile_quietly()
    Mix.Dala.epmd_port!()

    case Laptop.devices(app) do
      {:ok, view} ->
        print(view, app)

      {:error, sentence} ->
        Mix.shell().error("dala.devices: " <> sentence)
        exit({:shutdown, 1})
    end
  end

  defp print(%{epmd_port: epmd, rows: rows, adb: adb}, app) do
    of = if app, do: " of #{app}", else: ""
    IO.puts("EPMD 127.0.0.1:#{epmd}: #{length(rows)} node#{if length(rows) != 1, do: "s"}#{of}")

    case adb do
      nil ->
        IO.puts("adb: not available (DALA_ADB, else adb on PATH): devices and tunnels not shown")

      %{serials: serials, reverses: reverses} ->
        reversed = for s <- serials, epmd in Map.get(reverses, s, []), do: s

        IO.puts(
          "adb: devices #{Laptop.list_or_none(serials)}; reverse tcp:#{epmd} on #{Laptop.list_or_none(reversed)}"
        )
    end

    width = rows |> Enum.map(&String.length(&1.name)) |> Enum.max(fn -> 0 end)

    for row <- rows do
      [
        String.pad_trailing(row.name, width),
        String.pad_trailing("port #{row.port}#{if row.auto?, do: " (auto)"}", 18),
        String.pad_trailing(probe(row.probe), 10),
        if(adb, do: "device #{row.device || "?"}  forward #{row.forward || "none"}", else: ""),
        if(row.shared_with != [], do: "SHARED PORT with #{Enum.join(row.shared_with, ", ")}")
      ]
      |> Enum.reject(&(&1 in [nil, ""]))
      |> Enum.join("  ")
      |> String.trim_trailing()
      |> IO.puts()
    end
  end

  defp probe(:answers), do: "answers"
  defp probe(:closed), do: "closes"
  defp probe(:refused), do: "no answer"
end
