%% @doc The native functions of dala, loaded from priv/dala_dist_nif.so.
%%
%% One module for both builds of the NIF. A desktop BEAM loads the shared
%% library `dala_dist_nif.so' from `code:priv_dir(dala)' (the app's
%% `_build/<env>/lib/dala/priv/'). A phone's BEAM (OTP built with
%% `--enable-static-nifs=.../dala_dist_nif.a') has the NIF linked in: there
%% `erlang:load_nif/2' looks the calling module's name up in its static NIF
%% table (the entry is named after the archive, `dala_dist_nif', and calls
%% `dala_dist_nif_nif_init') and ignores the path, so the same call works.
%%
%% Private to the library: Elixir code calls `Dala.Dist', which validates its
%% arguments first. Erlang users may call this module directly; every function
%% raises an `ArgumentError' map (`#{'__struct__' => 'Elixir.ArgumentError',
%% message => Msg}') for bad arguments, naming the argument in `Msg'.
%%
%% Loading fails loudly: a missing or broken library raises from the on_load
%% hook with the library's path and the loader's reason, and the same text is
%% kept for `load_error/0' so that the application can report it on start.
-module(dala_dist_nif).

-export([load_error/0, library_path/0]).
-export([platform/0, cookie_from_env/2, apply_suffix/2, validate_node/1]).
-export([epmd_names/3, epmd_port_please/4, epmd_kill/3]).
-export([gate_new/0, gate_wait/4, gate_cancel/1]).

-on_load(init/0).

-define(LIB, "dala_dist_nif").

init() ->
    Path = library_path(),
    case erlang:load_nif(Path, 0) of
        ok ->
            persistent_term:erase({?MODULE, load_error}),
            ok;
        {error, {Reason, Text}} ->
            Message = lists:flatten(
                io_lib:format("failed to load NIF library ~ts.so: ~p: ~ts", [Path, Reason, Text])
            ),
            persistent_term:put({?MODULE, load_error}, Message),
            erlang:error({load_nif_failed, Message})
    end.

%% @doc The reason the last load failed, or `none'.
-spec load_error() -> none | string().
load_error() -> persistent_term:get({?MODULE, load_error}, none).

%% @doc Where the library is loaded from, without the `.so' extension.
%% A static build (the path is not used there) may run without a dala
%% application directory: then the bare library name.
-spec library_path() -> string().
library_path() ->
    case code:priv_dir(dala) of
        {error, bad_name} ->
            case code:which(?MODULE) of
                Beam when is_list(Beam) ->
                    filename:join([filename:dirname(Beam), "..", "priv", ?LIB]);
                _ ->
                    ?LIB
            end;
        Dir ->
            filename:join(Dir, ?LIB)
    end.

-define(NIF_STUB, erlang:nif_error({not_loaded, ?MODULE})).

%% @doc `android', `ios' or `host', as compiled.
-spec platform() -> android | ios | host.
platform() -> ?NIF_STUB.

%% @doc Derive the cookie for `AppName' from the secret in environment variable `EnvVar'.
-spec cookie_from_env(binary(), binary()) ->
    {ok, binary()} | {generated, binary()} | {error, weak_short | weak_distinct}.
cookie_from_env(_EnvVar, _AppName) -> ?NIF_STUB.

%% @doc Insert a sanitised device suffix into a node name.
-spec apply_suffix(binary(), binary()) -> binary().
apply_suffix(_Base, _Suffix) -> ?NIF_STUB.

%% @doc Check a node name; raises an ArgumentError naming what is wrong.
-spec validate_node(binary()) -> ok.
validate_node(_Node) -> ?NIF_STUB.

%% @doc NAMES_REQ to the EPMD at `Ip':`Port' (dirty IO). `Ip' is an IPv4 literal, never
%% resolved. Reasons: `closed', `bad_reply', `timeout', or a POSIX name (`econnrefused', ...).
-spec epmd_names(binary(), 1..65535, 1..86400000) ->
    {ok, #{epmd_port := non_neg_integer(), names := [{binary(), 0..65535}]}} | {error, atom()}.
epmd_names(_Ip, _Port, _TimeoutMs) -> ?NIF_STUB.

%% @doc PORT_PLEASE2_REQ for `Name' (dirty IO).
-spec epmd_port_please(binary(), 1..65535, binary(), 1..86400000) ->
    {ok, 0..65535} | {error, not_registered | atom()}.
epmd_port_please(_Ip, _Port, _Name, _TimeoutMs) -> ?NIF_STUB.

%% @doc KILL_REQ (dirty IO). `{error, refused}' when EPMD answers "NO".
-spec epmd_kill(binary(), 1..65535, 1..86400000) -> ok | {error, refused | atom()}.
epmd_kill(_Ip, _Port, _TimeoutMs) -> ?NIF_STUB.

%% @doc A new gate handle, owned (monitored) by the calling process.
-spec gate_new() -> reference().
gate_new() -> ?NIF_STUB.

%% @doc Wait until the EPMD at `Ip':`Port' answers NAMES, the deadline passes, or the gate is cancelled (dirty IO).
%% A cancelled gate stays cancelled: later waits on it return `cancelled' at once.
-spec gate_wait(reference(), binary(), 1..65535, 1..86400000) ->
    {ready, #{elapsed_ms := non_neg_integer(), attempts := pos_integer(),
              names := [{binary(), 0..65535}]}}
    | {timeout, #{elapsed_ms := non_neg_integer(), attempts := non_neg_integer(),
                  last_error := atom()}}
    | {cancelled, #{elapsed_ms := non_neg_integer(), attempts := non_neg_integer()}}.
gate_wait(_Gate, _Ip, _Port, _TimeoutMs) -> ?NIF_STUB.

%% @doc Wake a waiting gate_wait/4 (normal scheduler). Idempotent.
-spec gate_cancel(reference()) -> ok.
gate_cancel(_Gate) -> ?NIF_STUB.
