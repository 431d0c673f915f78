defmodule Dala.NifSymbolsTest do
  # The shared NIF exports nif_init and nothing else (the VM's dlsym target); the rest, a
  # statically linked libsodium included, stays local. The static archive's check (only
  # dala_dist_nif_nif_init) runs in `make cross-ci`.
  use ExUnit.Case, async: true

  test "the shared NIF exports only nif_init" do
    so = Path.join(:code.priv_dir(:dala), "dala_dist_nif.so")
    {out, 0} = System.cmd("nm", ["-D", "--defined-only", so])

    names =
      for line <- String.split(out, "\n", trim: true), do: line |> String.split() |> List.last()

    assert names == ["nif_init"]
  end
end
