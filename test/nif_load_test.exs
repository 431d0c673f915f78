defmodule Dala.NifLoadTest do
  use ExUnit.Case, async: true

  @moduletag :tmp_dir

  # Loads :dala_dist_nif in a fresh `erl` whose dala lib dir is `dir`, and reports what happened.
  defp load_in_fresh_vm(dir) do
    eval = """
    R = code:ensure_loaded(dala_dist_nif),
    io:format("result=~p~n", [R]),
    io:format("load_error=~ts~n", [persistent_term:get({dala_dist_nif, load_error}, "none")]),
    halt().
    """

    {out, 0} =
      System.cmd(
        System.find_executable("erl"),
        ["-noshell", "-pa", Path.join(dir, "ebin"), "-eval", eval],
        stderr_to_stdout: true
      )

    out
  end

  defp lib_dir_with(tmp_dir, so_bytes) do
    dir = Path.join(tmp_dir, "dala")
    File.mkdir_p!(Path.join(dir, "ebin"))
    File.mkdir_p!(Path.join(dir, "priv"))
    File.cp!(:code.which(:dala_dist_nif), Path.join([dir, "ebin", "dala_dist_nif.beam"]))
    if so_bytes, do: File.write!(Path.join([dir, "priv", "dala_dist_nif.so"]), so_bytes)
    dir
  end

  test "a corrupt library fails the load with the library's path and the loader's reason", %{
    tmp_dir: tmp
  } do
    dir = lib_dir_with(tmp, "this is not an ELF file")
    out = load_in_fresh_vm(dir)
    assert out =~ "result={error,on_load_failure}"

    assert out =~
             "load_error=failed to load NIF library #{dir}/priv/dala_dist_nif.so: load_failed"
  end

  test "a missing library fails the load with the library's path", %{tmp_dir: tmp} do
    dir = lib_dir_with(tmp, nil)
    out = load_in_fresh_vm(dir)
    assert out =~ "result={error,on_load_failure}"

    assert out =~
             "load_error=failed to load NIF library #{dir}/priv/dala_dist_nif.so: load_failed"
  end

  test "the real library loads in a fresh VM and answers", %{tmp_dir: tmp} do
    dir = lib_dir_with(tmp, File.read!(Path.join(:code.priv_dir(:dala), "dala_dist_nif.so")))
    out = load_in_fresh_vm(dir)
    assert out =~ "result={module,dala_dist_nif}"
    assert out =~ "load_error=none"
  end
end

defmodule Dala.NifRebuildTest do
  # Not async: it removes the library that other tests' `mix` and `erl` processes load.
  use ExUnit.Case, async: false

  test "mix compile puts a removed _build/test/lib/dala/priv/dala_dist_nif.so back" do
    so = Path.join(:code.priv_dir(:dala), "dala_dist_nif.so")
    saved = File.read!(so)
    File.rm!(so)

    try do
      {out, status} =
        System.cmd("mix", ["compile"], env: [{"MIX_ENV", "test"}], stderr_to_stdout: true)

      assert status == 0, out
      assert out =~ "Compiled #{Path.relative_to_cwd(so)}"
      assert File.read!(so) == saved
    after
      unless File.exists?(so), do: File.write!(so, saved)
    end
  end
end
