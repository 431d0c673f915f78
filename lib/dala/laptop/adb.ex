defmodule Dala.Laptop.Adb do
  @moduledoc """
  Every `adb` call of the laptop tasks, in one place.

  The executable is `DALA_ADB` when that variable is set (a path, or a name looked up on
  `PATH`), else `adb` on `PATH`. The tests point `DALA_ADB` at a stand-in
  (`test/support/fake_adb`, test support only) that lists configured serials and records
  `reverse`/`forward` requests, since test machines have no device.

  Only these commands are used, with their usual output:

    * `adb devices` - `serial<TAB>device` lines;
    * `adb -s SERIAL reverse tcp:P tcp:P` and `adb -s SERIAL reverse --list`;
    * `adb -s SERIAL forward tcp:P tcp:P` and `adb forward --list` (`serial tcp:P tcp:P` lines).
  """

  @typedoc "A device serial, as `adb devices` prints it."
  @type serial :: String.t()

  @typedoc """
  Why an adb call failed: no executable, its exit status and output, or no answer within the
  bound (`adb_timeout_ms` of the `:dala` application environment, 15_000 by default: an
  offline or unauthorized device can hold `adb` indefinitely).
  """
  @type error :: :no_adb | {:adb, non_neg_integer(), String.t()} | {:adb_timeout, pos_integer()}

  @doc "The adb executable (`DALA_ADB`, else `adb` on `PATH`), or `nil` when there is none."
  @spec executable() :: Path.t() | nil
  def executable do
    case System.get_env("DALA_ADB") do
      value when value in [nil, ""] ->
        System.find_executable("adb")

      value ->
        if File.regular?(value), do: Path.expand(value), else: System.find_executable(value)
    end
  end

  @doc "The serials of the attached devices in the `device` state."
  @spec devices() :: {:ok, [serial()]} | {:error, error()}
  def devices do
    with {:ok, out} <- adb(["devices"]) do
      serials =
        for line <- String.split(out, "\n"),
            [serial, "device"] <- [String.split(String.trim(line), ~r/\s+/, parts: 2)],
            do: serial

      {:ok, serials}
    end
  end

  @doc "`adb -s SERIAL reverse tcp:PORT tcp:PORT`: the device's `PORT` reaches the laptop's."
  @spec reverse(serial(), :inet.port_number()) :: :ok | {:error, error()}
  def reverse(serial, port), do: tunnel(serial, "reverse", port)

  @doc "`adb -s SERIAL forward tcp:PORT tcp:PORT`: the laptop's `PORT` reaches the device's."
  @spec forward(serial(), :inet.port_number()) :: :ok | {:error, error()}
  def forward(serial, port), do: tunnel(serial, "forward", port)

  @doc "The laptop's forwards (`adb forward --list`): `%{local_port => serial}` for `tcp:` ones."
  @spec forwards() :: {:ok, %{:inet.port_number() => serial()}} | {:error, error()}
  def forwards do
    with {:ok, out} <- adb(["forward", "--list"]) do
      {:ok, Map.new(for {serial, local, _remote} <- tunnels(out), do: {local, serial})}
    end
  end

  @doc "The device's reverse tunnels (`adb -s SERIAL reverse --list`): the device-side ports."
  @spec reverses(serial()) :: {:ok, [:inet.port_number()]} | {:error, error()}
  def reverses(serial) do
    with {:ok, out} <- adb(["-s", serial, "reverse", "--list"]) do
      {:ok, for({_transport, remote, _local} <- tunnels(out), do: remote)}
    end
  end

  defp tunnel(serial, kind, port) do
    with {:ok, _} <- adb(["-s", serial, kind, "tcp:#{port}", "tcp:#{port}"]), do: :ok
  end

  # "<serial or transport> tcp:A tcp:B" lines; anything else (localabstract:, jdwp:) is skipped.
  defp tunnels(out) do
    for line <- String.split(out, "\n"),
        [who, "tcp:" <> a, "tcp:" <> b] <- [String.split(String.trim(line), ~r/\s+/)],
        {a, ""} <- [Integer.parse(a)],
        {b, ""} <- [Integer.parse(b)],
        do: {who, a, b}
  end

  defp adb(args) do
    case executable() do
      nil ->
        {:error, :no_adb}

      exe ->
        timeout = Application.get_env(:dala, :adb_timeout_ms, 15_000)
        task = Task.async(fn -> System.cmd(exe, args, stderr_to_stdout: true) end)

        case Task.yield(task, timeout) || Task.shutdown(task, :brutal_kill) do
          {:ok, {out, 0}} -> {:ok, out}
          {:ok, {out, status}} -> {:error, {:adb, status, String.trim(out)}}
          nil -> {:error, {:adb_timeout, timeout}}
        end
    end
  end
end
