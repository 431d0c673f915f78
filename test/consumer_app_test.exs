defmodule Dala.ConsumerApp do
  @moduledoc false
  # A throwaway Mix app that depends on this checkout by path, as a new user's app does.

  @checkout File.cwd!()

  def checkout, do: @checkout

  # Writes the app into a fresh directory under `root` and returns its path.
  def create(root, name \\ "consumer") do
    dir = Path.join(root, name)
    File.mkdir_p!(Path.join(dir, "lib"))

    File.write!(Path.join(dir, "mix.exs"), """
    defmodule Consumer.MixProject do
      use Mix.Project

      def project do
        [app: :consumer, version: "0.1.0", deps: [{:dala, path: #{inspect(@checkout)}}]]
      end

      def application, do: [extra_applications: [:logger]]
    end
    """)

    File.write!(Path.join(dir, "lib/consumer.ex"), """
    defmodule Consumer do
      def hello, do: Dala.Dist.platform()
    end
    """)

    dir
  end

  # `mix` in the app, with dala's own build settings cleared (a user's shell has none).
  def mix(dir, args, env \\ []) do
    # (LD_PRELOAD: the sanitised test run preloads ASan into everything it starts.)
    clean =
      for v <- ~w(DALA_SANITIZE DALA_WERROR DALA_CMAKE_ARGS DALA_CMAKE_TOOLCHAIN_FILE
                  DALA_TARGET DALA_CROSS_INSTALL DALA_BUILD_TYPE MIX_BUILD_PATH MIX_DEPS_PATH
                  LD_PRELOAD),
          do: {v, nil}

    System.cmd(System.find_executable("mix"), args,
      cd: dir,
      env: clean ++ [{"MIX_ENV", "dev"}] ++ env,
      stderr_to_stdout: true
    )
  end

  def git_status do
    {out, 0} = System.cmd("git", ["status", "--porcelain", "--ignored"], cd: @checkout)
    out
  end
end

defmodule Dala.ConsumerAppTest do
  # Not async: it compares the checkout's `git status --ignored` before and after, which other
  # tests (tmp_dir) could change while it runs.
  use ExUnit.Case, async: false

  alias Dala.ConsumerApp

  @moduletag :tmp_dir
  @moduletag :consumer
  @moduletag timeout: 600_000

  test "an app depending on this checkout by path builds the NIF in its own _build and calls Dala.Dist",
       %{tmp_dir: tmp} do
    before = ConsumerApp.git_status()
    app = ConsumerApp.create(tmp)

    {out, status} = ConsumerApp.mix(app, ["compile"])
    assert status == 0, out

    # Nothing written into the dependency's tree, not even ignored files.
    assert ConsumerApp.git_status() == before

    nif = Path.join(app, "_build/dev/lib/dala/priv/dala_dist_nif.so")
    assert File.regular?(nif)
    assert File.dir?(Path.join(app, "_build/dev/native/host-release"))
    # The release build is stripped: no symbol table, no debug sections.
    {sections, 0} = System.cmd("readelf", ["-S", "-W", nif])
    refute sections =~ ".symtab"
    refute sections =~ ".debug_info"

    script = """
    IO.puts("priv_dir=\#{:code.priv_dir(:dala)}")
    IO.puts("platform=\#{Consumer.hello()}")
    IO.puts("suffix=\#{Dala.Dist.apply_suffix(:"my_app@127.0.0.1", "emulator-5554")}")
    """

    {out, status} = ConsumerApp.mix(app, ["run", "-e", script])
    assert status == 0, out
    assert out =~ "priv_dir=#{Path.join(app, "_build/dev/lib/dala/priv")}\n"
    assert out =~ "platform=host\n"
    assert out =~ "suffix=my_app_emulator-5554@127.0.0.1\n"
    assert ConsumerApp.git_status() == before
  end
end

defmodule Dala.RebarConsumerTest do
  # Not async, for the same reason as Dala.ConsumerAppTest.
  use ExUnit.Case, async: false

  alias Dala.ConsumerApp

  @moduletag :tmp_dir
  @moduletag :consumer
  @moduletag timeout: 600_000

  test "a rebar3 project with this checkout in _checkouts builds the NIF in its own _build",
       %{tmp_dir: tmp} do
    before = ConsumerApp.git_status()
    app = Path.join(tmp, "rebar_consumer")
    File.mkdir_p!(Path.join(app, "src"))
    File.mkdir_p!(Path.join(app, "_checkouts"))
    File.ln_s!(ConsumerApp.checkout(), Path.join(app, "_checkouts/dala"))
    File.write!(Path.join(app, "rebar.config"), "{deps, [dala]}.\n")

    File.write!(
      Path.join(app, "src/rebar_consumer.app.src"),
      ~s({application, rebar_consumer, [{description, "t"}, {vsn, "0.1.0"}, ) <>
        ~s({applications, [kernel, stdlib]}]}.\n)
    )

    clean =
      for v <- ~w(DALA_CMAKE_ARGS DALA_CMAKE_TOOLCHAIN_FILE DALA_TARGET LD_PRELOAD), do: {v, nil}

    {out, status} = System.cmd("rebar3", ["compile"], cd: app, env: clean, stderr_to_stdout: true)
    assert status == 0, out
    assert ConsumerApp.git_status() == before

    dala = Path.join(app, "_build/default/checkouts/dala")
    assert File.regular?(Path.join(dala, "priv/dala_dist_nif.so"))

    {out, 0} =
      System.cmd("erl", [
        "-noshell",
        "-pa",
        Path.join(dala, "ebin"),
        "-eval",
        ~S|io:format("~s ~p~n", [code:priv_dir(dala), dala_dist_nif:platform()]), halt().|
      ])

    assert out == "#{Path.join(dala, "priv")} host\n"
  end
end

defmodule Dala.MissingToolTest do
  use ExUnit.Case, async: true

  alias Dala.ConsumerApp

  @moduletag :tmp_dir
  @moduletag timeout: 120_000

  # A directory of links to every program on PATH but `skip`.
  defp path_without(tmp, skip) do
    bin = Path.join(tmp, "bin")
    File.mkdir_p!(bin)

    for dir <- String.split(System.get_env("PATH"), ":"),
        File.dir?(dir),
        name <- File.ls!(dir),
        name != skip,
        not File.exists?(Path.join(bin, name)),
        do: File.ln_s!(Path.join(dir, name), Path.join(bin, name))

    bin
  end

  # The one line Mix prints for the failure.
  defp failure(out) do
    case Regex.run(~r/^\*\* \(Mix\) (.*)$/m, out, capture: :all_but_first) do
      [line] -> line
      nil -> flunk("no `** (Mix)` line in the build's output:\n" <> out)
    end
  end

  test "no cmake on PATH: one message naming cmake and its packages", %{tmp_dir: tmp} do
    app = ConsumerApp.create(tmp)
    {out, status} = ConsumerApp.mix(app, ["compile"], [{"PATH", path_without(tmp, "cmake")}])
    assert status != 0
    refute out =~ "enoent"

    assert failure(out) ==
             "dala: missing cmake: the NIF is built with CMake 3.20+ " <>
               "(Debian: apt-get install cmake; Homebrew: brew install cmake)"
  end

  test "no C++ compiler: one message naming it and its packages", %{tmp_dir: tmp} do
    app = ConsumerApp.create(tmp)
    {out, status} = ConsumerApp.mix(app, ["compile"], [{"CXX", "/nonexistent/c++"}])
    assert status != 0
    line = failure(out)
    assert line =~ "dala: missing C++17 compiler: "
    assert line =~ "Debian: apt-get install g++"
    assert line =~ "Homebrew: "
  end

  test "no libsodium at the given prefix: one message naming it and its packages", %{
    tmp_dir: tmp
  } do
    app = ConsumerApp.create(tmp)
    args = "-DSODIUM_ROOT=#{Path.join(tmp, "no-sodium")}"
    {out, status} = ConsumerApp.mix(app, ["compile"], [{"DALA_CMAKE_ARGS", args}])
    assert status != 0
    line = failure(out)
    assert line =~ "dala: missing libsodium: "
    assert line =~ "Debian: apt-get install libsodium-dev; Homebrew: brew install libsodium"
  end

  test "no erl_nif.h in the given directory: one message naming it and its packages", %{
    tmp_dir: tmp
  } do
    app = ConsumerApp.create(tmp)
    args = "-DERTS_INCLUDE_DIR=#{Path.join(tmp, "no-erts")}"
    {out, status} = ConsumerApp.mix(app, ["compile"], [{"DALA_CMAKE_ARGS", args}])
    assert status != 0
    line = failure(out)
    assert line =~ "dala: missing erl_nif.h: "
    assert line =~ "Debian: apt-get install erlang-dev; Homebrew: brew install erlang"
  end
end

defmodule Dala.CrossGuardTest do
  use ExUnit.Case, async: true

  alias Dala.ConsumerApp

  @moduletag :tmp_dir
  @moduletag timeout: 120_000

  # (No quote in the test's name: it is in tmp_dir's path, which goes into DALA_CMAKE_ARGS.)
  test "a cross build whose output is not for the toolchain processor fails loudly", %{
    tmp_dir: tmp
  } do
    # A "toolchain" that names aarch64 but keeps the host's compiler, as a toolchain file
    # passed to an old host build directory used to: the x86_64 library must not be installed.
    app = ConsumerApp.create(tmp)
    erts = Path.join([:code.root_dir(), "usr", "include"])
    # The host's libsodium as a -DSODIUM_ROOT prefix (pkg-config's host answer is refused).
    {include, 0} = System.cmd("pkg-config", ["--variable=includedir", "libsodium"])
    {libdir, 0} = System.cmd("pkg-config", ["--variable=libdir", "libsodium"])
    sodium = Path.join(tmp, "sodium")
    File.mkdir_p!(Path.join(sodium, "lib"))
    File.ln_s!(String.trim(include), Path.join(sodium, "include"))

    File.ln_s!(
      Path.join(String.trim(libdir), "libsodium.so"),
      Path.join(sodium, "lib/libsodium.so")
    )

    args =
      "-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 -DERTS_INCLUDE_DIR=#{erts} " <>
        "-DSODIUM_ROOT=#{sodium} -DDALA_SODIUM_STATIC=OFF"

    {out, status} =
      ConsumerApp.mix(app, ["compile"], [
        {"DALA_CMAKE_ARGS", args},
        {"DALA_TARGET", "fake-arm64"},
        {"DALA_CROSS_INSTALL", "priv"}
      ])

    assert status != 0, out
    [line] = Regex.run(~r/^\*\* \(Mix\) (.*)$/m, out, capture: :all_but_first)

    assert line =~
             ~r/is built for ELF machine 62, but the toolchain's processor \(aarch64\) needs 183/

    refute File.exists?(Path.join(app, "_build/dev/lib/dala/priv/dala_dist_nif.so"))
  end
end
