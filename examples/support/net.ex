defmodule DalaDemo.Net do
  @moduledoc "Loopback helpers: free ports and a raw EPMD NAMES request."

  @loopback {127, 0, 0, 1}

  @doc "A port nothing listens on right now (the OS picks it)."
  def free_port do
    {:ok, socket} = :gen_tcp.listen(0, ip: @loopback)
    {:ok, port} = :inet.port(socket)
    :gen_tcp.close(socket)
    port
  end

  @doc """
  Sends EPMD's NAMES request to 127.0.0.1:`port`: `{:ok, [name]}` when an EPMD answers,
  `{:error, reason}` otherwise (a dead tunnel gives `{:error, :closed}`).
  """
  def epmd_names(port, timeout \\ 1_000) do
    with {:ok, socket} <- :gen_tcp.connect(@loopback, port, [:binary, active: false], timeout) do
      # NAMES_REQ: a 2-byte length, then the request code 110 ('n').
      :ok = :gen_tcp.send(socket, <<1::16, 110>>)
      reply = recv_all(socket, timeout, "")
      :gen_tcp.close(socket)

      case reply do
        {:ok, <<_epmd_port::32, text::binary>>} ->
          {:ok, for([_, name] <- Regex.scan(~r/^name (\S+) at port/m, text), do: name)}

        {:ok, _short} ->
          {:error, :closed}

        error ->
          error
      end
    end
  end

  # EPMD closes the connection after its reply.
  defp recv_all(socket, timeout, acc) do
    case :gen_tcp.recv(socket, 0, timeout) do
      {:ok, data} -> recv_all(socket, timeout, acc <> data)
      {:error, :closed} -> {:ok, acc}
      error -> error
    end
  end

  @doc "Waits until an EPMD answers on `port`: `{:ok, names}`, or the last error after `timeout` ms."
  def await_epmd(port, timeout) do
    await_epmd(port, System.monotonic_time(:millisecond) + timeout, nil)
  end

  defp await_epmd(port, deadline, _last) do
    case epmd_names(port, 200) do
      {:ok, names} ->
        {:ok, names}

      error ->
        if System.monotonic_time(:millisecond) >= deadline do
          error
        else
          Process.sleep(10)
          await_epmd(port, deadline, error)
        end
    end
  end
end
