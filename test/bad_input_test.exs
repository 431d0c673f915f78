defmodule Dala.BadInputTest do
  # Every public function of Dala.Dist and the documented Dala.Dist.Epmd functions, given what a
  # caller should never pass. Each row must raise ArgumentError with exactly the message in
  # docs/bad_input.md (which lists them all), and leave the VM and the library running.
  # Nothing here starts distribution or opens a connection to an EPMD on 4369.
  use ExUnit.Case, async: false

  import Bitwise
  alias Dala.Dist
  alias Dala.Dist.Epmd
  alias Dala.Test.Net

  @doc_path "docs/bad_input.md"
  @secret "s3cret-value-that-must-not-leak"

  def mb, do: String.duplicate("a", 1_048_576)
  def name300, do: String.duplicate("n", 300)

  # {call, expected message (a string, or a regex for messages that carry a large number)}
  @table [
    # Dala.Dist.ensure_started/1: the option list
    {quote(do: Dist.ensure_started("opts")),
     "options must be a keyword list of {atom, value} pairs, got: a binary"},
    {quote(do: Dist.ensure_started(%{delay: 0})),
     "options must be a keyword list of {atom, value} pairs, got: a map"},
    {quote(do: Dist.ensure_started([{:delay, 0}, :oops])),
     "options must be a keyword list of {atom, value} pairs, got: a list"},
    {quote(do: Dist.ensure_started(delay: 0, retries: 3)),
     "unknown option(s) [:retries]; allowed: [:node, :cookie, :delay, :dist_port, :listen_interface, :epmd_timeout, :platform]"},
    {quote(do: Dist.ensure_started(platform: :windows)),
     "option :platform must be :android, :ios or :host, got: :windows"},
    # delays and timeouts: negative, zero where not allowed, huge, wrong type
    {quote(do: Dist.ensure_started(delay: -1)),
     "option :delay must be an integer in 0..3600000 (milliseconds), got: -1"},
    {quote(do: Dist.ensure_started(delay: 1 <<< 64)),
     "option :delay must be an integer in 0..3600000 (milliseconds), got: 18446744073709551616"},
    {quote(do: Dist.ensure_started(delay: 1.5)),
     "option :delay must be an integer in 0..3600000 (milliseconds), got: 1.5"},
    {quote(do: Dist.ensure_started(epmd_timeout: 0)),
     "option :epmd_timeout must be an integer in 1..3600000 (milliseconds), got: 0"},
    {quote(do: Dist.ensure_started(epmd_timeout: 3_600_001)),
     "option :epmd_timeout must be an integer in 1..3600000 (milliseconds), got: 3600001"},
    {quote(do: Dist.ensure_started(epmd_timeout: :infinity)),
     "option :epmd_timeout must be an integer in 1..3600000 (milliseconds), got: :infinity"},
    # ports
    {quote(do: Dist.ensure_started(dist_port: 0)),
     "option :dist_port must be an integer in 1..65535, got: 0"},
    {quote(do: Dist.ensure_started(dist_port: 65_536)),
     "option :dist_port must be an integer in 1..65535, got: 65536"},
    {quote(do: Dist.ensure_started(dist_port: "9100")),
     "option :dist_port must be an integer in 1..65535, got: \"9100\""},
    {quote(do: Dist.ensure_started(listen_interface: {300, 0, 0, 1})),
     "option :listen_interface must be an IP address tuple, got: {300, 0, 0, 1}"},
    {quote(do: Dist.ensure_started(listen_interface: "127.0.0.1")),
     "option :listen_interface must be an IP address tuple, got: \"127.0.0.1\""},
    # the node
    {quote(do: Dist.ensure_started(platform: :android, cookie: :c)),
     "option :node must be a node name atom such as :\"my_app@127.0.0.1\", got: nil"},
    {quote(do: Dist.ensure_started(platform: :host, node: "my_app@127.0.0.1", cookie: :c)),
     "option :node must be a node name atom such as :\"my_app@127.0.0.1\", got: \"my_app@127.0.0.1\""},
    {quote(do: Dist.ensure_started(platform: :android, node: name300(), cookie: :c)),
     ~r/^option :node must be a node name atom such as :"my_app@127.0.0.1", got: "n{64}" <> \.\.\.$/},
    {quote(do: Dist.ensure_started(platform: :android, node: :my_app, cookie: :c)),
     "option :node must include a host (\"name@host\", such as :\"my_app@127.0.0.1\"), got: :my_app"},
    {quote(do: Dist.ensure_started(platform: :android, node: :"my app@127.0.0.1", cookie: :c)),
     "option :node: node name part must match [A-Za-z0-9_-]+, got invalid byte 0x20 at position 2"},
    {quote(do: Dist.ensure_started(platform: :android, node: :"my\0app@127.0.0.1", cookie: :c)),
     "option :node: node name part must match [A-Za-z0-9_-]+, got invalid byte 0x00 at position 2"},
    {quote(do: Dist.ensure_started(platform: :android, node: :a@b@c, cookie: :c)),
     "option :node: node must contain at most one '@', got another at position 3"},
    {quote(do: Dist.ensure_started(platform: :android, node: :a@, cookie: :c)),
     "option :node: node host must not be empty"},
    # the cookie: never echoed, whatever its type
    {quote(do: Dist.ensure_started(platform: :android, node: :"a@127.0.0.1")),
     "option :cookie must be a non-empty atom (see cookie_from_env/2), got: nil"},
    {quote(do: Dist.ensure_started(platform: :android, node: :"a@127.0.0.1", cookie: @secret)),
     "option :cookie must be a non-empty atom (see cookie_from_env/2), got: a binary"},
    {quote(
       do:
         Dist.ensure_started(
           platform: :android,
           node: :"a@127.0.0.1",
           cookie: to_charlist(@secret)
         )
     ), "option :cookie must be a non-empty atom (see cookie_from_env/2), got: a list"},
    {quote(do: Dist.ensure_started(platform: :android, node: :"a@127.0.0.1", cookie: :"")),
     "option :cookie must be a non-empty atom (see cookie_from_env/2), got: :\"\""},
    # Dala.Dist.await/1
    {quote(do: Dist.await(-1)), "timeout must be a non-negative integer (milliseconds), got: -1"},
    {quote(do: Dist.await(:infinity)),
     "timeout must be a non-negative integer (milliseconds), got: :infinity"},
    {quote(do: Dist.await("100")),
     "timeout must be a non-negative integer (milliseconds), got: \"100\""},
    # Dala.Dist.cookie_from_env/2
    {quote(do: Dist.cookie_from_env(:MY_VAR, "my_app")), "env_var must be a binary"},
    {quote(do: Dist.cookie_from_env(@secret, :my_app)), "app_name must be a binary"},
    {quote(do: Dist.cookie_from_env("", "my_app")), "env_var must be a non-empty binary"},
    {quote(do: Dist.cookie_from_env("MY\0VAR", "my_app")), "env_var must not contain NUL bytes"},
    {quote(do: Dist.cookie_from_env("MY=VAR", "my_app")), "env_var must not contain \"=\""},
    {quote(do: Dist.cookie_from_env("MY_VAR", "")), "app_name must be a non-empty binary"},
    {quote(do: Dist.cookie_from_env("MY_VAR", <<0xFF, 0xFE>>)), "app_name must be valid UTF-8"},
    {quote(do: Dist.cookie_from_env("MY_VAR", name300())),
     "app_name must be at most 255 bytes, got 300"},
    {quote(do: Dist.cookie_from_env("MY_VAR", mb())),
     "app_name must be at most 255 bytes, got 1048576"},
    # Dala.Dist.apply_suffix/2
    {quote(do: Dist.apply_suffix("my_app@127.0.0.1", "x")),
     "base_node must be an atom, got: \"my_app@127.0.0.1\""},
    {quote(do: Dist.apply_suffix(nil, "x")), "base_node must be an atom, got: nil"},
    {quote(do: Dist.apply_suffix(:"my_app@127.0.0.1", :x)),
     "suffix must be a string or nil, got: :x"},
    {quote(do: Dist.apply_suffix(:"my_app@127.0.0.1", 'x')),
     "suffix must be a string or nil, got: 'x'"},
    {quote(do: Dist.apply_suffix(:"my_app@127.0.0.1", mb())),
     "suffix is too long: 1048576 bytes after trimming would make the node 1048593 characters, at most 255 allowed"},
    {quote(do: Dist.apply_suffix(:"my_app@127.0.0.1", name300())),
     "suffix is too long: 300 bytes after trimming would make the node 317 characters, at most 255 allowed"},
    {quote(do: Dist.apply_suffix(:"my\0app@127.0.0.1", "x")),
     "base_node name part must match [A-Za-z0-9_-]+, got invalid byte 0x00 at position 2"},
    {quote(do: Dist.apply_suffix(:my_app@, "x")), "base_node host must not be empty"},
    # Dala.Dist.Epmd request options (names/1, port_please/2, kill/1, wait/2, wait_gate/3 share them)
    {quote(do: Epmd.names(:fast)),
     "options must be a keyword list of {atom, value} pairs, got: :fast"},
    {quote(do: Epmd.names(retries: 3)),
     "unknown keys [:retries] in [retries: 3], the allowed keys are: [:ip, :port, :timeout]"},
    {quote(do: Epmd.names(port: 0)), "port must be an integer in 1..65535, got: 0"},
    {quote(do: Epmd.names(port: 65_536)), "port must be an integer in 1..65535, got: 65536"},
    {quote(do: Epmd.kill(port: -1)), "port must be an integer in 1..65535, got: -1"},
    {quote(do: Epmd.names(timeout: 0)),
     "timeout must be an integer in 1..3600000 (milliseconds), got: 0"},
    {quote(do: Epmd.names(timeout: -5)),
     "timeout must be an integer in 1..3600000 (milliseconds), got: -5"},
    {quote(do: Epmd.kill(timeout: 1 <<< 40)),
     "timeout must be an integer in 1..3600000 (milliseconds), got: 1099511627776"},
    {quote(do: Epmd.names(ip: "localhost")),
     "ip must be an IPv4 address literal such as \"127.0.0.1\" or a 4-tuple, got: \"localhost\""},
    {quote(do: Epmd.names(ip: "127.0.0.1\0")),
     "ip must be an IPv4 address literal such as \"127.0.0.1\" or a 4-tuple, got: <<49, 50, 55, 46, 48, ...>>"},
    {quote(do: Epmd.names(ip: mb())),
     ~r/^ip must be an IPv4 address literal such as "127.0.0.1" or a 4-tuple, got: "a{64}" <> \.\.\.$/},
    {quote(do: Epmd.names(ip: {0, 0, 0, 0, 0, 0, 0, 1})),
     "ip must be an IPv4 address literal such as \"127.0.0.1\" or a 4-tuple, got: {0, 0, 0, 0, 0, ...}"},
    # Dala.Dist.Epmd.port_please/2
    {quote(do: Epmd.port_please(:my_app)), "name must be a string, got: :my_app"},
    {quote(do: Epmd.port_please("")), "name must not be empty"},
    {quote(do: Epmd.port_please(mb())), "name must be at most 1020 bytes, got 1048576"},
    {quote(do: Epmd.port_please("my_app", port: 65_536)),
     "port must be an integer in 1..65535, got: 65536"},
    # Dala.Dist.Epmd.wait/2, wait_gate/3 and cancel/1
    {quote(do: Epmd.wait(0)),
     "timeout_ms must be an integer in 1..3600000 (milliseconds), got: 0"},
    {quote(do: Epmd.wait(-1)),
     "timeout_ms must be an integer in 1..3600000 (milliseconds), got: -1"},
    {quote(do: Epmd.wait(1 <<< 40)),
     "timeout_ms must be an integer in 1..3600000 (milliseconds), got: 1099511627776"},
    {quote(do: Epmd.wait("100")),
     "timeout_ms must be an integer in 1..3600000 (milliseconds), got: \"100\""},
    {quote(do: Epmd.wait_gate(Epmd.new_gate(), 0)),
     "timeout_ms must be an integer in 1..3600000 (milliseconds), got: 0"},
    {quote(do: Epmd.wait_gate(:gate, 100, [])), "gate must be a handle returned by gate_new/0"},
    {quote(do: Epmd.wait_gate(make_ref(), 100)), "gate must be a handle returned by gate_new/0"},
    {quote(do: Epmd.wait(100, port: 0)), "port must be an integer in 1..65535, got: 0"},
    {quote(do: Epmd.cancel(:gate)), "gate must be a handle returned by gate_new/0"},
    {quote(do: Epmd.cancel(make_ref())), "gate must be a handle returned by gate_new/0"},
    # Dala.Dist.Epmd.start_daemon/2 (all raise before anything is started)
    {quote(do: Epmd.start_daemon(0)), "port must be an integer in 1..65535, got: 0"},
    {quote(do: Epmd.start_daemon(65_536)), "port must be an integer in 1..65535, got: 65536"},
    {quote(do: Epmd.start_daemon(:epmd)), "port must be an integer in 1..65535, got: :epmd"},
    {quote(do: Epmd.start_daemon(65_535, timeout: 0)),
     "timeout must be an integer in 1..3600000 (milliseconds), got: 0"},
    {quote(do: Epmd.start_daemon(65_535, retries: 3)),
     "unknown keys [:retries] in [retries: 3], the allowed keys are: [:timeout]"}
  ]

  setup do
    Dist.stop()
    on_exit(fn -> Dist.stop() end)
  end

  for {call, expected} <- @table do
    test "#{Macro.to_string(call) |> String.replace("\0", "\\0")}" do
      server = Process.whereis(Dala.Dist.Server)
      error = assert_raise ArgumentError, fn -> unquote(call) end
      expected = unquote(Macro.escape(expected))

      case expected do
        %Regex{} -> assert error.message =~ expected
        text -> assert error.message == text
      end

      refute error.message =~ @secret
      # The caller got an exception; nothing else moved: same server, nothing started.
      assert Process.whereis(Dala.Dist.Server) == server
      assert Dist.status() == :idle
      assert Dala.Test.DistCase.work_processes() == []
    end
  end

  test "docs/bad_input.md lists every message of the table" do
    doc = File.read!(@doc_path)

    for {call, expected} <- @table, is_binary(expected) do
      assert doc =~ expected, "#{@doc_path} lacks #{inspect(expected)} (#{Macro.to_string(call)})"
    end
  end

  describe "documented results that are not errors" do
    test "apply_suffix/2 sanitises NUL bytes and invalid UTF-8 in the suffix" do
      assert Dist.apply_suffix(:"my_app@127.0.0.1", "a\0b") == :"my_app_a_b@127.0.0.1"
      assert Dist.apply_suffix(:"my_app@127.0.0.1", <<0xFF, 0xFE>>) == :"my_app___@127.0.0.1"
      assert Dist.apply_suffix(:"my_app@127.0.0.1", nil) == :"my_app@127.0.0.1"
    end

    test "port_please/2 sends any name it can frame; a real EPMD closes on names it refuses" do
      port = Net.free_port()
      epmd = Net.start_epmd(port)
      on_exit(fn -> Net.stop_epmd(epmd) end)

      for name <- ["a\0b", <<0xFF, 0xFE>>, name300()] do
        assert Epmd.port_please(name, port: port) == {:error, :closed}
      end

      # EPMD is still fine afterwards.
      assert Epmd.port_please("my_app", port: port) == {:error, :not_registered}
    end

    test "cookie_from_env/2 takes any valid UTF-8 app name, NUL included" do
      System.put_env("DALA_BAD_INPUT_SECRET", "correct horse battery staple")
      on_exit(fn -> System.delete_env("DALA_BAD_INPUT_SECRET") end)
      a = Dist.cookie_from_env("DALA_BAD_INPUT_SECRET", "my\0app")
      assert is_atom(a) and byte_size(Atom.to_string(a)) == 64
      refute a == Dist.cookie_from_env("DALA_BAD_INPUT_SECRET", "myapp")
    end

    test "a DALA_NODE_SUFFIX that makes the name too long is a failed attempt, not an exception" do
      System.put_env("DALA_NODE_SUFFIX", name300())
      on_exit(fn -> System.delete_env("DALA_NODE_SUFFIX") end)
      :ok = Dist.ensure_started(platform: :android, node: :"my_app@127.0.0.1", cookie: :c)

      assert Dist.status() ==
               {:failed,
                {:invalid_node,
                 "DALA_NODE_SUFFIX: suffix is too long: 300 bytes after trimming would make the node 317 characters, at most 255 allowed"}}
    end
  end
end
