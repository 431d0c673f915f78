defmodule Dala.Laptop.AdbTest do
  # Every adb call is bounded: an adb that never answers (an offline or unauthorized device can
  # hold it) ends as {:adb_timeout, ms}, which the tasks turn into one sentence.
  use ExUnit.Case, async: false

  alias Dala.Laptop.Adb

  @moduletag :tmp_dir

  setup %{tmp_dir: tmp} do
    hang = Path.join(tmp, "adb")
    File.write!(hang, "#!/bin/sh\nexec sleep 30\n")
    File.chmod!(hang, 0o755)
    saved = System.get_env("DALA_ADB")
    System.put_env("DALA_ADB", hang)
    Application.put_env(:dala, :adb_timeout_ms, 300)

    on_exit(fn ->
      Application.delete_env(:dala, :adb_timeout_ms)
      if saved, do: System.put_env("DALA_ADB", saved), else: System.delete_env("DALA_ADB")
    end)
  end

  test "an adb that never answers ends at the bound with {:adb_timeout, ms}" do
    assert Adb.devices() == {:error, {:adb_timeout, 300}}
    assert Adb.forward("emulator-5554", 9100) == {:error, {:adb_timeout, 300}}
  end
end
