defmodule Dala.PlatformTest do
  use ExUnit.Case, async: true
  doctest Dala.Dist, only: [platform: 0]

  test "the NIF is loaded and this machine is a host build" do
    assert Dala.Dist.platform() == :host
    assert :dala_dist_nif.platform() == :host
  end
end
