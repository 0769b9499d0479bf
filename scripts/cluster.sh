#!/usr/bin/env bash
# scripts/cluster.sh - a local cluster: N stateless sheepcrm-mcp replicas behind HAProxy, sharing one
# Redis (approvals, audit stream, rate limits), as plain processes (no systemd, no docker).
# The tests in tests/cluster and the benchmarks start and stop it; .ci/run calls `install`.
#
# Everything it writes is private: umask 077, the state folder 0700, Redis's AOF and logs 0600. Redis needs a
# password, generated once into $CLUSTER_STATE_DIR/redis.pass (0600) and given to Redis in a 0600 config file
# (never on a command line, which every local user can read); replicas get it in SHEEPCRM_REDIS_URL.
#
# Subcommands:
#   install           apt-get install redis-server + haproxy + prometheus if missing (idempotent, quiet)
#   start             start redis, (a sandbox,) N replicas, haproxy; wait until each answers
#   stop              stop everything started (pid files in $CLUSTER_STATE_DIR)
#   restart           stop + start
#   status            show processes, ports, and haproxy's view of the backends
#   kill-replica N    stop replica N (1-based); KILL_SIGNAL=KILL simulates a crash
#   start-replica N   (re)start replica N and wait until it and haproxy see it healthy
#   stop-redis        stop only Redis (its AOF keeps what was written); `start` brings it back
#   config            print the generated haproxy config
#   redis-url         print the Redis URL, password included (for your own tools; keep it private)
#   own-settings      print the replicas' settings (the Redis URL and request-state key included: keep them private)
#                     as the lines of the own settings file of the account they run as, the only place hosted mode,
#                     the shared store, the request-state key, the public address and the balancer's address count
#                     from: bash scripts/cluster.sh own-settings >>~/.config/sheepcrm-mcp/settings.env (chmod 600)
#
# Environment (defaults in brackets):
#   CLUSTER_STATE_DIR   [/tmp/sheepcrm-cluster]  pid files, logs, haproxy.cfg, redis AOF dir, redis.pass (0700)
#   REPLICAS            [3]
#   REPLICA_BASE_PORT   [18101]   replica i listens on REPLICA_BASE_PORT + i - 1 (only a REPLICA_CMD with {port})
#   REPLICA_CMD         [sheepcrm-mcp --transport http --stateless --uds {socket}]
#                       placeholders {socket} {port} {index}. With {socket} (the default) replica i serves on the Unix
#                       socket $CLUSTER_STATE_DIR/run/replica-i.sock, in the 0700 state folder, and haproxy reaches
#                       it there: another local account cannot take a stopped replica's place (with {port} it can
#                       bind the free port, and haproxy's health check would send it clients' bearer tokens).
#                       Each replica also gets SOCKET or PORT, REPLICA_INDEX, REPLICA_ID,
#                       SHEEPCRM_REDIS_URL (password included), SHEEPCRM_REQUEST_STATE_KEY (request-state.key,
#                       0600, the same for all), SHEEPCRM_PUBLIC_URL (the balancer's address)
#                       and SHEEPCRM_FORWARDED_ALLOW_IPS=$BIND_ADDR (haproxy's X-Forwarded-For names the client)
#   SHEEPCRM_BIN        [sheepcrm-mcp next to this repo's .venv python, else on PATH]
#   SHEEPCRM_BASE_URL   upstream sheepCRM; when unset, the script starts the embedded sandbox on
#                       SANDBOX_PORT [18090] (v1 on SANDBOX_PORT+1) and points every replica at it (one shared fake CRM)
#   REPLICA_HEALTH_PATH [/healthz]
#   LB_PORT             [18080]   haproxy frontend
#   LB_STATS_PORT       [18404]   haproxy stats page (/stats, CSV at /stats;csv)
#   REDIS_PORT          [16379]
#   REDIS_APPENDFSYNC   [everysec]  "always" fsyncs every write (slower, no 1 s loss window)
#   BIND_ADDR           [127.0.0.1] everything binds to loopback only
#   START_TIMEOUT       [30]      seconds to wait for each component to answer
#   STOP_TIMEOUT        [15]      seconds between SIGTERM and SIGKILL (replicas drain in-flight calls)
#   LB_STREAM_TIMEOUT   [1h]      client/server idle timeout (SSE streams need keep-alive events under this)
#   KILL_SIGNAL         [TERM]    signal used by kill-replica
#   REPLICA_ENV_FILE    a deployment's replica settings (KEY=value lines, e.g. examples/member-bot/replica.env):
#                       each replica gets those not already set by the environment or by this script
set -Eeuo pipefail
umask 077

STATE_DIR="${CLUSTER_STATE_DIR:-/tmp/sheepcrm-cluster}"
REPLICAS="${REPLICAS:-3}"
REPLICA_BASE_PORT="${REPLICA_BASE_PORT:-18101}"
REPLICA_HEALTH_PATH="${REPLICA_HEALTH_PATH:-/healthz}"
LB_PORT="${LB_PORT:-18080}"
LB_STATS_PORT="${LB_STATS_PORT:-18404}"
REDIS_PORT="${REDIS_PORT:-16379}"
REDIS_APPENDFSYNC="${REDIS_APPENDFSYNC:-everysec}"
BIND_ADDR="${BIND_ADDR:-127.0.0.1}"
START_TIMEOUT="${START_TIMEOUT:-30}"
STOP_TIMEOUT="${STOP_TIMEOUT:-15}"
LB_STREAM_TIMEOUT="${LB_STREAM_TIMEOUT:-1h}"
KILL_SIGNAL="${KILL_SIGNAL:-TERM}"
REDIS_SHOWN="redis://${BIND_ADDR}:${REDIS_PORT}/0"  # what logs say: never the password
SANDBOX_PORT="${SANDBOX_PORT:-18090}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${SHEEPCRM_BIN:-}" ]]; then
  for cand in "$REPO/${SHEEPCRM_VENV:-.venv}/bin/sheepcrm-mcp" "$REPO/.venv/bin/sheepcrm-mcp"; do
    [[ -x "$cand" ]] && { SHEEPCRM_BIN="$cand"; break; }
  done
  SHEEPCRM_BIN="${SHEEPCRM_BIN:-sheepcrm-mcp}"
fi

RUN_DIR="$STATE_DIR/run"
LOG_DIR="$STATE_DIR/logs"
REDIS_DIR="$STATE_DIR/redis"
HAPROXY_CFG="$STATE_DIR/haproxy.cfg"
REDIS_PASS_FILE="$STATE_DIR/redis.pass"
REDIS_CONF="$RUN_DIR/redis.conf"
STATE_KEY_FILE="$STATE_DIR/request-state.key"
SANDBOX_KEY_FILE="$RUN_DIR/sandbox.key"  # the embedded sandbox's API key: random per start, 0600
STUB="$STATE_DIR/stub_replica.py"

log()  { printf '[cluster] %s\n' "$*" >&2; }
die()  { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

validate_env() {
  local v
  for v in REPLICAS REPLICA_BASE_PORT LB_PORT LB_STATS_PORT REDIS_PORT SANDBOX_PORT START_TIMEOUT STOP_TIMEOUT; do
    is_uint "${!v}" || die "$v must be a non-negative integer (got '${!v}')"
  done
  (( REPLICAS >= 1 )) || die "REPLICAS must be >= 1"
  (( REPLICA_BASE_PORT + REPLICAS - 1 <= 65535 )) || die "replica ports exceed 65535"
  case "$REDIS_APPENDFSYNC" in always|everysec|no) ;; *) die "REDIS_APPENDFSYNC must be always|everysec|no";; esac
  # Port collisions between our own components are a config error, not a runtime surprise.
  local -A seen=()
  local p name i
  for name in LB_PORT LB_STATS_PORT REDIS_PORT SANDBOX_PORT; do
    p="${!name}"; [[ -z "${seen[$p]:-}" ]] || die "$name=$p collides with ${seen[$p]}"; seen[$p]=$name
  done
  for ((i = 1; i <= REPLICAS; i++)); do
    p=$((REPLICA_BASE_PORT + i - 1))
    [[ -z "${seen[$p]:-}" ]] || die "replica $i port $p collides with ${seen[$p]}"; seen[$p]="replica $i"
  done
}

need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found; run: $0 install"; }

# ---------------------------------------------------------------- install ---
as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "install needs root (or sudo) for: $*"; fi
}

cmd_install() {
  local missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v redis-cli    >/dev/null 2>&1 || missing+=(redis-tools)
  command -v haproxy      >/dev/null 2>&1 || missing+=(haproxy)
  command -v prometheus   >/dev/null 2>&1 || missing+=(prometheus)  # scrapes the replicas' /metrics in the tests
  if ((${#missing[@]} == 0)); then
    log "already installed: redis-server $(redis-server --version | awk '{print $3}' | sed 's/^v=//') / $(haproxy -v | head -1 | awk '{print $1, $3}')"
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found (this script targets Debian/Ubuntu)"
  log "installing: ${missing[*]}"
  # Do not let the packages' postinst start system-wide daemons (they would grab
  # 6379 etc. and outlive us). Docker-style images already ship a policy-rc.d;
  # on a fresh Debian add a temporary one and remove it afterwards.
  local added_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
    added_policy=1
  fi
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -qq -y
             -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 --no-install-recommends)
  local out rc=0
  out="$(as_root "${apt[@]}" install "${missing[@]}" 2>&1)" || rc=$?
  if ((rc != 0)); then
    log "apt-get install failed (rc=$rc), running apt-get update and retrying"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300 update >/dev/null 2>&1 \
      || { ((added_policy)) && as_root rm -f /usr/sbin/policy-rc.d; die "apt-get update failed"; }
    rc=0
    out="$(as_root "${apt[@]}" install "${missing[@]}" 2>&1)" || rc=$?
  fi
  ((added_policy)) && as_root rm -f /usr/sbin/policy-rc.d
  if ((rc != 0)); then
    printf '%s\n' "$out" | tail -20 >&2
    die "apt-get install ${missing[*]} failed (rc=$rc)"
  fi
  for c in redis-server redis-cli haproxy prometheus; do
    command -v "$c" >/dev/null 2>&1 || die "$c still missing after install"
  done
  log "installed: redis-server $(redis-server --version | awk '{print $3}' | sed 's/^v=//') / $(haproxy -v | head -1 | awk '{print $1, $3}')"
}

# ------------------------------------------------------- process helpers ---
# A pid file holds "PID STARTTIME" (starttime = field 22 of /proc/PID/stat) so a
# recycled PID is never mistaken for ours.
proc_starttime() { awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null; }
# state letter (R,S,D,Z,...). Zombies count as dead: our children are re-parented to
# PID 1 when cluster.sh exits, and a PID 1 that does not reap leaves them as zombies.
proc_state() { awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null; }

pid_of() {  # name -> prints pid if the recorded process is still alive
  local f="$RUN_DIR/$1.pid" pid st
  [[ -f "$f" ]] || return 1
  read -r pid st <"$f" || return 1
  [[ -n "$pid" && -d "/proc/$pid" ]] || return 1
  [[ "$(proc_starttime "$pid")" == "$st" ]] || return 1
  case "$(proc_state "$pid")" in Z|X|"") return 1 ;; esac
  printf '%s\n' "$pid"
}

# Start "$@" in its own session/process group (so stop kills children too).
spawn() {  # name logfile cmd...
  local name="$1" logf="$2"; shift 2
  # 9>&- : do not leak the state-dir lock fd into long-running children
  setsid "$@" </dev/null >>"$logf" 2>&1 9>&- &
  local pid=$!
  local st="" i
  for ((i = 0; i < 50; i++)); do st="$(proc_starttime "$pid")" && [[ -n "$st" ]] && break; sleep 0.01; done
  [[ -n "$st" ]] || { log "$name exited immediately; last log lines:"; tail -n 20 "$logf" >&2 || true; return 1; }
  printf '%s %s\n' "$pid" "$st" >"$RUN_DIR/$name.pid"
}

stop_proc() {  # name
  local name="$1" pid i
  pid="$(pid_of "$name")" || { rm -f "$RUN_DIR/$name.pid"; return 0; }
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    pid_of "$name" >/dev/null || break
    sleep 0.1
  done
  if pid_of "$name" >/dev/null; then
    log "$name (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$RUN_DIR/$name.pid"
  log "stopped $name (pid $pid)"
}

port_open() {  # port -> 0 if something accepts TCP connections on BIND_ADDR:port
  timeout 1 bash -c "exec 3<>/dev/tcp/$BIND_ADDR/$1" 2>/dev/null
}

http_get() {  # port path -> prints raw HTTP/1.0 response; no curl dependency
  timeout "${3:-2}" bash -c '
    exec 3<>/dev/tcp/'"$BIND_ADDR"'/'"$1"' || exit 1
    printf "GET %s HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n" "$0" >&3
    cat <&3' "$2" 2>/dev/null
}

http_status() {  # port path -> prints status code
  http_get "$1" "$2" | head -1 | awk '{print $2}'
}

wait_until() {  # name description check-cmd...  (fails early if the process died)
  local name="$1" what="$2"; shift 2
  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! pid_of "$name" >/dev/null; then
      log "$name died while waiting for: $what; last log lines ($LOG_DIR/$name.log):"
      tail -n 20 "$LOG_DIR/$name.log" >&2 || true
      return 1
    fi
    if "$@"; then return 0; fi
    sleep 0.1
  done
  log "timed out after ${START_TIMEOUT}s waiting for $name: $what; last log lines:"
  tail -n 20 "$LOG_DIR/$name.log" >&2 || true
  return 1
}

ensure_port_free() {  # port owner-description
  if port_open "$1"; then
    log "ERROR: port $BIND_ADDR:$1 (for $2) is already in use by another process; pick another via env vars (see '$0 help')"
    return 1
  fi
}

# ----------------------------------------------------------------- redis ---
redis_password() {  # generated once, 0600; printed on stdout for the caller only
  if [[ ! -s "$REDIS_PASS_FILE" ]]; then
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$REDIS_PASS_FILE")
  fi
  chmod 600 "$REDIS_PASS_FILE"
  cat "$REDIS_PASS_FILE"
}
state_key() {  # the request-state key every replica shares (2026-07-28 confirmations), generated once, 0600
  if [[ ! -s "$STATE_KEY_FILE" ]]; then
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STATE_KEY_FILE")
  fi
  chmod 600 "$STATE_KEY_FILE"
  cat "$STATE_KEY_FILE"
}
redis_url() { printf 'redis://:%s@%s:%s/0' "$(redis_password)" "$BIND_ADDR" "$REDIS_PORT"; }
# REDISCLI_AUTH: redis-cli reads the password from its environment, not its command line
redis_ping() { [[ "$(REDISCLI_AUTH="$(redis_password)" redis-cli -h "$BIND_ADDR" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

start_redis() {
  if pid_of redis >/dev/null; then log "redis already running (pid $(pid_of redis)) on $BIND_ADDR:$REDIS_PORT"; return 0; fi
  ensure_port_free "$REDIS_PORT" redis || return 1
  mkdir -p "$REDIS_DIR"
  # The password goes in a 0600 config file; the rest on the command line. RDB snapshots off, AOF on.
  printf 'requirepass %s\n' "$(redis_password)" >"$REDIS_CONF"
  chmod 600 "$REDIS_CONF"
  spawn redis "$LOG_DIR/redis.log" redis-server "$REDIS_CONF" \
    --bind "$BIND_ADDR" --port "$REDIS_PORT" --protected-mode yes \
    --dir "$REDIS_DIR" --daemonize no --supervised no \
    --save '' --appendonly yes --appendfsync "$REDIS_APPENDFSYNC" \
    --loglevel notice || return 1
  wait_until redis "PING on $BIND_ADDR:$REDIS_PORT" redis_ping || return 1
  log "redis up on $BIND_ADDR:$REDIS_PORT (pid $(pid_of redis), aof dir $REDIS_DIR, appendfsync $REDIS_APPENDFSYNC, password in $REDIS_PASS_FILE)"
}

# -------------------------------------------------------------- replicas ---
replica_cmd_template() {  # (the default in a variable: inside ${REPLICA_CMD:-...} its "}" would end the expansion)
  local default="$SHEEPCRM_BIN --transport http --stateless --uds {socket}"
  printf '%s' "${REPLICA_CMD:-$default}"
}

# ---------------------------------------------------------------- sandbox ---
# Without SHEEPCRM_BASE_URL the replicas share one embedded sandbox (a fake sheepCRM) started here.
uses_sandbox() { [[ -z "${SHEEPCRM_BASE_URL:-}" ]]; }

start_sandbox() {
  uses_sandbox || return 0
  if pid_of sandbox >/dev/null; then log "sandbox already running (pid $(pid_of sandbox))"; return 0; fi
  ensure_port_free "$SANDBOX_PORT" sandbox || return 1
  ensure_port_free "$((SANDBOX_PORT + 1))" "sandbox v1" || return 1
  local py; py="$(dirname "$SHEEPCRM_BIN")/python"; [[ -x "$py" ]] || py=python3
  # A new random key each start (never a fixed one another local user could send), passed in the environment, not
  # on the command line where ps shows it; the replicas read it from the 0600 file.
  (umask 077; printf 'sandbox-%s' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$SANDBOX_KEY_FILE")
  ( export SANDBOX_KEY; SANDBOX_KEY="$(cat "$SANDBOX_KEY_FILE")"
    spawn sandbox "$LOG_DIR/sandbox.log" "$py" -m sheepcrm_mcp.sandbox --host "$BIND_ADDR" --port "$SANDBOX_PORT" \
      --v1-port "$((SANDBOX_PORT + 1))" --bucket demo ) || return 1
  wait_until sandbox "sandbox answering on :$SANDBOX_PORT" port_open "$SANDBOX_PORT" || return 1
  log "sandbox up on $BIND_ADDR:$SANDBOX_PORT"
}

replica_env() {  # the upstream settings every replica gets
  if uses_sandbox; then
    printf '%s\n' "SHEEPCRM_BASE_URL=http://$BIND_ADDR:$SANDBOX_PORT" "SHEEPCRM_V1_BASE_URL=http://$BIND_ADDR:$((SANDBOX_PORT + 1))" \
      "SHEEPCRM_API_KEY=$(cat "$SANDBOX_KEY_FILE")" "SHEEPCRM_BUCKET=demo"
  fi
}

on_sockets() { [[ "$(replica_cmd_template)" == *"{socket}"* ]]; }  # replicas on Unix sockets (the default)
replica_socket() { printf '%s/replica-%s.sock' "$RUN_DIR" "$1"; }
replica_port() { printf '%s' $((REPLICA_BASE_PORT + $1 - 1)); }
replica_where() { if on_sockets; then replica_socket "$1"; else printf '%s:%s' "$BIND_ADDR" "$(replica_port "$1")"; fi; }

replica_status() {  # index path -> prints the status code of GET path at replica i (empty: no answer)
  if on_sockets; then
    python3 - "$(replica_socket "$1")" "$2" <<'PY' 2>/dev/null || true
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(f"GET {sys.argv[2]} HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
print(s.recv(64).split(b" ")[1].decode())
PY
  else
    http_status "$(replica_port "$1")" "$2"
  fi
}

replica_settings() {  # [no-upstream] exports the settings every replica gets (run it in a subshell)
  local -a upstream=()
  [[ "${1:-}" == no-upstream ]] || mapfile -t upstream < <(replica_env)
  for kv in "${upstream[@]}"; do export "${kv?}"; done
  export SHEEPCRM_REDIS_URL="${SHEEPCRM_REDIS_URL:-$(redis_url)}"
  export SHEEPCRM_FORWARDED_ALLOW_IPS="${SHEEPCRM_FORWARDED_ALLOW_IPS:-$BIND_ADDR}"
  export SHEEPCRM_REQUEST_STATE_KEY="${SHEEPCRM_REQUEST_STATE_KEY:-$(state_key)}"
  export SHEEPCRM_PUBLIC_URL="${SHEEPCRM_PUBLIC_URL:-http://$BIND_ADDR:$LB_PORT}"
  if [[ -n "${REPLICA_ENV_FILE:-}" ]]; then
    local line key
    while IFS= read -r line || [[ -n "$line" ]]; do
      [[ "$line" =~ ^[A-Z_][A-Z0-9_]*= ]] || continue
      key="${line%%=*}"
      [[ -n "${!key:-}" ]] || export "${line?}"
    done <"$REPLICA_ENV_FILE"
  fi
}

cmd_own_settings() {  # the replicas' settings, as lines of the own settings file of the account they run as
  validate_env
  prepare_dirs
  (  # the sandbox's upstream and the sheepCRM keys stay in the replicas' environment (a sandbox key is new per start)
    replica_settings no-upstream
    printf 'SHEEPCRM_TRANSPORT=http\n'
    env | grep -E '^SHEEPCRM_[A-Z0-9_]+=' | grep -vE '^SHEEPCRM_(BIN|VENV|TRANSPORT|API_KEY[A-Z_]*)=' | sort
  )
}

replica_healthy() { [[ "$(replica_status "$1" "$REPLICA_HEALTH_PATH")" == 200 ]]; }

start_replica() {  # index
  local i="$1" port socket name cmd where
  port="$(replica_port "$i")"; socket="$(replica_socket "$i")"; name="replica-$i"; where="$(replica_where "$i")"
  if pid_of "$name" >/dev/null; then log "$name already running (pid $(pid_of "$name")) on $where"; return 0; fi
  if on_sockets; then rm -f "$socket"; else ensure_port_free "$port" "$name" || return 1; fi
  cmd="$(replica_cmd_template)"
  cmd="${cmd//\{port\}/$port}"; cmd="${cmd//\{socket\}/$socket}"; cmd="${cmd//\{index\}/$i}"
  printf '%s\n' "--- $(date -Is) starting: $cmd" >>"$LOG_DIR/$name.log"
  (
    replica_settings
    if on_sockets; then export SOCKET="$socket"; else export PORT="$port"; fi
    export REPLICA_INDEX="$i" REPLICA_ID="$name"
    spawn "$name" "$LOG_DIR/$name.log" bash -c "exec $cmd"
  ) || return 1
  wait_until "$name" "GET $REPLICA_HEALTH_PATH -> 200 on $where" replica_healthy "$i" || {
    log "last $REPLICA_HEALTH_PATH status from $name: '$(replica_status "$i" "$REPLICA_HEALTH_PATH")' (empty = no answer)"
    return 1; }
  log "$name up on $where (pid $(pid_of "$name"))"
}

# --------------------------------------------------------------- haproxy ---
write_haproxy_cfg() {
  local i
  {
    cat <<EOF
# generated by cluster.sh - do not edit
global
    log stdout format raw local0 info
    maxconn 4096
    # stats socket for runtime inspection (socat/ncat optional)
    stats socket $RUN_DIR/haproxy.sock mode 600 level admin

defaults
    mode http
    log global
    option httplog
    option dontlognull
    # --- timeouts tuned for long-lived HTTP streams (SSE / MCP streamable HTTP) ---
    timeout connect 2s                  # TCP connect to a replica (loopback: fail fast)
    timeout http-request 15s            # client must send full request headers within this
    timeout http-keep-alive 15s         # idle time between requests on a keep-alive conn
    timeout queue 5s
    timeout client $LB_STREAM_TIMEOUT                 # max inactivity client side (SSE: send keep-alive < this)
    timeout server $LB_STREAM_TIMEOUT                 # max inactivity server side (idle SSE stream)
    timeout tunnel $LB_STREAM_TIMEOUT                 # after upgrade (WebSocket) - not used by SSE but harmless
    timeout client-fin 5s
    timeout server-fin 5s
    # deliver small SSE chunks immediately instead of waiting to fill packets
    option http-no-delay
    # a request whose TCP connect failed (so it was never sent) is re-sent to another
    # replica. Do NOT add empty-response/response-timeout/5xx here: haproxy would then
    # replay POSTs (MCP tool calls) that a dying replica may already have executed.
    retries 2
    option redispatch 1
    retry-on conn-failure
    option forwardfor

frontend fe_mcp
    bind $BIND_ADDR:$LB_PORT
    default_backend be_replicas

backend be_replicas
    balance roundrobin
    http-response set-header X-Served-By %[srv_name]
    option httpchk
    http-check send meth GET uri $REPLICA_HEALTH_PATH ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    default-server inter 1s fastinter 500ms downinter 1s fall 2 rise 2 check
EOF
    for ((i = 1; i <= REPLICAS; i++)); do
      if on_sockets; then  # a socket in the 0700 state folder: no other account can serve there
        printf '    server replica-%d unix@%s\n' "$i" "$(replica_socket "$i")"
      else
        printf '    server replica-%d %s:%d\n' "$i" "$BIND_ADDR" "$(replica_port "$i")"
      fi
    done
    cat <<EOF

frontend fe_stats
    bind $BIND_ADDR:$LB_STATS_PORT
    stats enable
    stats uri /stats
    stats refresh 2s
    http-request set-log-level silent
EOF
  } >"$HAPROXY_CFG"
}

lb_healthy() { [[ "$(http_status "$LB_PORT" "$REPLICA_HEALTH_PATH")" == 200 ]]; }

backend_states() {  # prints "name status" per server in be_replicas, from the stats CSV
  http_get "$LB_STATS_PORT" '/stats;csv' | tr -d '\r' | awk -F, '
    /^HTTP\// {next} /^[A-Za-z-]+: / {next}
    $1 == "be_replicas" && $2 != "BACKEND" {print $2, $18}'
}

backend_is_up() { [[ "$(backend_states | awk -v s="$1" '$1 == s {print $2}')" == UP ]]; }

all_backends_up() {
  local n
  n="$(backend_states | awk '$2 == "UP" {c++} END {print c+0}')"
  ((n == REPLICAS))
}

start_haproxy() {
  if pid_of haproxy >/dev/null; then log "haproxy already running (pid $(pid_of haproxy)) on :$LB_PORT"; return 0; fi
  ensure_port_free "$LB_PORT" "haproxy frontend" || return 1
  ensure_port_free "$LB_STATS_PORT" "haproxy stats" || return 1
  write_haproxy_cfg
  local out
  out="$(haproxy -c -q -f "$HAPROXY_CFG" 2>&1)" || { printf '%s\n' "$out" >&2; log "ERROR: haproxy config check failed ($HAPROXY_CFG)"; return 1; }
  # -db: stay in foreground (we manage the pid); -W: master-worker so SIGUSR2 reloads work
  spawn haproxy "$LOG_DIR/haproxy.log" haproxy -W -db -f "$HAPROXY_CFG" || return 1
  wait_until haproxy "GET $REPLICA_HEALTH_PATH -> 200 via :$LB_PORT" lb_healthy || return 1
  wait_until haproxy "all $REPLICAS backends UP in health checks" all_backends_up || return 1
  log "haproxy up on $BIND_ADDR:$LB_PORT -> $REPLICAS replicas (stats http://$BIND_ADDR:$LB_STATS_PORT/stats)"
}

# -------------------------------------------------------------- commands ---
prepare_dirs() {  # private: a state folder someone else made (e.g. in /tmp) is refused, older files made 0600
  mkdir -p "$STATE_DIR"
  [[ -O "$STATE_DIR" && ! -L "$STATE_DIR" ]] || die "$STATE_DIR belongs to someone else (or is a link); pick another CLUSTER_STATE_DIR"
  mkdir -p "$RUN_DIR" "$LOG_DIR" "$REDIS_DIR"
  chmod -R go-rwx "$STATE_DIR"
}

cmd_start() {
  validate_env
  need redis-server; need redis-cli; need haproxy; need setsid
  prepare_dirs
  exec 9>"$RUN_DIR/.lock"; flock -n 9 || die "another cluster.sh is operating on $STATE_DIR"
  local recorded
  recorded="$(cat "$RUN_DIR/replicas" 2>/dev/null || true)"
  if pid_of haproxy >/dev/null && [[ -n "$recorded" && "$recorded" != "$REPLICAS" ]]; then
    die "haproxy is running with REPLICAS=$recorded but REPLICAS=$REPLICAS now; run '$0 stop' first"
  fi
  # preflight: every port we are about to bind must be free (fail before starting anything)
  local i bad=0
  pid_of redis >/dev/null   || ensure_port_free "$REDIS_PORT" redis || bad=1
  if uses_sandbox && ! pid_of sandbox >/dev/null; then ensure_port_free "$SANDBOX_PORT" sandbox || bad=1; fi
  for ((i = 1; i <= REPLICAS; i++)); do
    on_sockets || pid_of "replica-$i" >/dev/null || ensure_port_free "$(replica_port "$i")" "replica-$i" || bad=1
  done
  if ! pid_of haproxy >/dev/null; then
    ensure_port_free "$LB_PORT" "haproxy frontend" || bad=1
    ensure_port_free "$LB_STATS_PORT" "haproxy stats" || bad=1
  fi
  ((bad == 0)) || die "ports in use; nothing started"
  start_redis || { log "start failed; stopping what was started"; cmd_stop_all; exit 1; }
  start_sandbox || { log "start failed; stopping what was started"; cmd_stop_all; exit 1; }
  for ((i = 1; i <= REPLICAS; i++)); do
    start_replica "$i" || { log "start failed; stopping what was started"; cmd_stop_all; exit 1; }
  done
  start_haproxy || { log "start failed; stopping what was started"; cmd_stop_all; exit 1; }
  printf '%s\n' "$REPLICAS" >"$RUN_DIR/replicas"
  log "cluster ready: http://$BIND_ADDR:$LB_PORT  redis $REDIS_SHOWN (password in $REDIS_PASS_FILE)  state $STATE_DIR"
}

cmd_stop_all() {
  [[ -d "$RUN_DIR" ]] || { log "nothing to stop ($RUN_DIR does not exist)"; return 0; }
  local f name
  stop_proc haproxy
  for f in "$RUN_DIR"/replica-*.pid; do
    [[ -e "$f" ]] || continue
    name="$(basename "$f" .pid)"; stop_proc "$name"
  done
  stop_proc sandbox
  stop_proc redis   # SIGTERM: redis fsyncs the AOF and exits cleanly
}

cmd_stop() {
  prepare_dirs
  exec 9>"$RUN_DIR/.lock"; flock -w 30 9 || die "another cluster.sh is operating on $STATE_DIR"
  cmd_stop_all
  log "all stopped"
}

cmd_status() {
  local rc=0 name pid i port n
  n="$(cat "$RUN_DIR/replicas" 2>/dev/null || echo "$REPLICAS")"
  printf '%-11s %-8s %-22s %s\n' COMPONENT PID ADDRESS STATE
  if pid="$(pid_of redis)"; then
    printf '%-11s %-8s %-22s %s\n' redis "$pid" "$BIND_ADDR:$REDIS_PORT" "$(redis_ping && echo 'running, PING ok' || echo 'running, NOT answering')"
  else printf '%-11s %-8s %-22s %s\n' redis - "$BIND_ADDR:$REDIS_PORT" stopped; rc=3; fi
  for ((i = 1; i <= n; i++)); do
    name="replica-$i"; port="$(replica_where "$i")"
    if pid="$(pid_of "$name")"; then
      printf '%-11s %-8s %-22s %s\n' "$name" "$pid" "$port" "$(replica_healthy "$i" && echo "running, $REPLICA_HEALTH_PATH 200" || echo "running, $REPLICA_HEALTH_PATH FAILING")"
    else printf '%-11s %-8s %-22s %s\n' "$name" - "$port" stopped; rc=3; fi
  done
  if pid="$(pid_of haproxy)"; then
    printf '%-11s %-8s %-22s %s\n' haproxy "$pid" "$BIND_ADDR:$LB_PORT" "running, stats :$LB_STATS_PORT"
    echo "haproxy backend view:"
    backend_states | sed 's/^/  /' || true
  else printf '%-11s %-8s %-22s %s\n' haproxy - "$BIND_ADDR:$LB_PORT" stopped; rc=3; fi
  return $rc
}

replica_index_arg() {
  local sub="${FUNCNAME[1]#cmd_}"
  if ! { [[ $# -ge 1 ]] && is_uint "$1" && (( $1 >= 1 )); }; then die "usage: $0 ${sub//_/-} N   (N = 1..$REPLICAS)"; fi
  (( $1 <= REPLICAS )) || die "replica $1 out of range 1..$REPLICAS (haproxy only knows REPLICAS=$REPLICAS servers)"
}

cmd_kill_replica() {
  replica_index_arg "$@"
  local name="replica-$1" pid
  pid="$(pid_of "$name")" || die "$name is not running"
  kill "-$KILL_SIGNAL" -- "-$pid" 2>/dev/null || kill "-$KILL_SIGNAL" "$pid" || die "could not signal $name (pid $pid)"
  local i
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do pid_of "$name" >/dev/null || break; sleep 0.1; done
  if pid_of "$name" >/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || true; sleep 0.2; fi
  rm -f "$RUN_DIR/$name.pid"
  log "killed $name (pid $pid, SIG$KILL_SIGNAL)"
}

cmd_start_replica() {
  replica_index_arg "$@"
  validate_env; prepare_dirs
  start_replica "$1"
  if pid_of haproxy >/dev/null; then
    wait_until haproxy "haproxy marks replica-$1 UP" backend_is_up "replica-$1" || exit 1
    log "haproxy sees replica-$1 UP"
  fi
}

usage() { sed -n '2,53p' "$0" | sed 's/^# \{0,1\}//'; }

main() {
  local cmd="${1:-help}"; shift || true
  case "$cmd" in
    install)        cmd_install ;;
    start)          cmd_start ;;
    stop)           cmd_stop ;;
    stop-redis)     prepare_dirs; stop_proc redis ;;
    restart)        cmd_stop; cmd_start ;;
    status)         cmd_status ;;
    kill-replica)   cmd_kill_replica "$@" ;;
    start-replica)  cmd_start_replica "$@" ;;
    config)         write_haproxy_cfg_to_stdout ;;
    redis-url)      prepare_dirs; redis_url; echo ;;
    own-settings)   cmd_own_settings ;;
    help|-h|--help) usage ;;
    *) usage >&2; die "unknown subcommand '$cmd'" ;;
  esac
}

write_haproxy_cfg_to_stdout() {  # never touches the config of a running haproxy
  validate_env
  local tmp; tmp="$(mktemp)"
  HAPROXY_CFG="$tmp" write_haproxy_cfg; cat "$tmp"; rm -f "$tmp"
}

main "$@"
