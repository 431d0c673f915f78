# Tests that start distribution inside this VM need a private EPMD port: OTP reads it once, at
# launch, from ERL_EPMD_PORT (as -epmd_port). The machine's default EPMD on 4369 is never used,
# so without a private port those tests are excluded (run the suite with `make test`).
exclude =
  case :init.get_argument(:epmd_port) do
    {:ok, [[port | _] | _]} when port != ~c"4369" ->
      []

    _ ->
      IO.puts(
        :stderr,
        "ERL_EPMD_PORT is not set to a private port: excluding the :vm_dist tests " <>
          "(run `make test`, or ERL_EPMD_PORT=<free port> mix test)"
      )

      [:vm_dist]
  end

# OS processes the tests start, by OS pid, for Dala.Test.Net's guardians.
{:ok, _} = Registry.start_link(keys: :unique, name: Dala.Test.OsPids)

ExUnit.start(exclude: exclude, capture_log: true)
