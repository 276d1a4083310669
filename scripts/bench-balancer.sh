#!/usr/bin/env bash
# Benchmark of elb-balancer against HAProxy 2.6 and nginx 1.22 (not a test): builds the static
# release elb-agent and elb-balancer, starts static agents on loopback as the same backends for
# every proxy, and loads, in interleaved rounds, each of: one agent directly (the ceiling),
# HAProxy (Debian's 2.6: path rules, `balance roundrobin`, `http-reuse always`, keep-alive, one
# thread per core), nginx (Debian's 1.22: the same rules as `location`s, `upstream` keep-alive
# 256, `proxy_http_version 1.1`, one worker per core), elb-balancer with `round_robin` and with
# `p2c_peak_ewma`; with wrk at -c1 (added latency: p50 minus direct's), -c64, -c256 and -c1024.
# Prints the medians of req/s, p50, p99, RSS idle and loaded, CPU seconds per 100k requests
# (utime+stime of the process and its children from /proc), the ratios against each peer, then
# the burst (10,000 clients that each open a connection and send one GET at once, through elb
# and through nginx, to one bare hyper target and to four: answered, failed, RSS with the
# connections open and after they close), then 1000 targets in one group: the reload time, the
# time until all are healthy, RSS, and req/s against a 4-target config. Ends with a summary of
# the goals, met or missed.
#
# The machine is small and shared, so figures are made to be compared, not admired: agents run
# on cpu 0, wrk on cpu 1, the proxies (2 threads) on both; rounds interleave the servers; each
# figure is the median of its rounds and every ratio compares medians of this invocation. The
# load average is printed with the figures.
#
# The 1000 targets are 1000 real elb-agents (each its own 127.0.0.1 port, about 2-3 MiB RSS,
# their stats sampler slowed down so that idle agents cost no CPU): a target must answer health
# checks to take traffic, and one agent serves one address.
#
# With valgrind installed it also counts the user-space instructions per request of elb-balancer
# and HAProxy under callgrind (BENCH_CALLGRIND=0 skips it): unlike req/s, that count does not
# move with the other load on the machine.
#
# Knobs (environment): BENCH_DURATION (5s a round), BENCH_ROUNDS (5), BENCH_CONNECTIONS (wrk's
# -c values, "1 64 256 1024"), BENCH_BURST (clients of the burst, 10000; 0 skips it),
# BENCH_SCALE_TARGETS (1000; 0 skips that part), BENCH_TLS (1; 0 skips HTTPS and HTTP/2),
# BENCH_BASELINE (path of another elb-balancer binary, e.g. a build of an earlier commit: loaded
# with `round_robin` in the same rounds as `base-rr`, for an A/B comparison on this noisy
# machine), BENCH_ACCESS_LOG (1; 0 skips `elb-log`: `round_robin` with the access log on, to a
# file in the work directory, in the same rounds, its lines counted against the requests). Runs as root on Debian 12 (installs haproxy, nginx, wrk and h2load with apt-get when
# missing). Loopback only. About 30 minutes after the build with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
duration=${BENCH_DURATION:-5s}
rounds=${BENCH_ROUNDS:-5}
scale_targets=${BENCH_SCALE_TARGETS:-1000}
connections=${BENCH_CONNECTIONS:-1 64 256 1024}
burst_clients=${BENCH_BURST:-10000}
# shellcheck source=scripts/bench/common.sh
source "$root/scripts/bench/common.sh" "agents on cpu 0, wrk on cpu 1, proxies on both"
cores=$(nproc)

missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v nginx >/dev/null || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "== building the static agent (dist profile) and balancer, and the bare hyper target"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile dist --target "$triple" \
  -p agent -p balancer --bins --example bare_hyper
agent_bin="$target_dir/$triple/dist/elb-agent"
lb_bin="$target_dir/$triple/dist/elb-balancer"
bare_bin="$target_dir/$triple/dist/examples/bare_hyper"

# wait_line FILE PATTERN: prints the rest of FILE's first line starting with PATTERN, waiting
# up to 10 s for it.
wait_line() {
  for _ in $(seq 200); do
    local line; line=$(sed -n "s/^$2//p" "$1" | head -1)
    [ -n "$line" ] && { echo "$line"; return 0; }
    sleep 0.05
  done
  echo "no '$2' in $1:" >&2; cat "$1" "${1%.out}.err" >&2 2>/dev/null; exit 1
}

# agents N PREFIX: starts N agents on 127.0.0.1 port 0, pinned to the server cpu; appends their
# addresses to $work/PREFIX.addrs.
agents() {
  local n=$1 prefix=$2
  for i in $(seq "$n"); do
    "${server_cpu[@]}" "$agent_bin" --listen 127.0.0.1:0 --cluster cluster1 \
      --instance-id "i-$prefix$i" --sample-interval 3600s \
      >"$work/$prefix$i.out" 2>"$work/$prefix$i.err" &
    pids+=("$!")
  done
  for i in $(seq "$n"); do wait_line "$work/$prefix$i.out" 'listening on ' >>"$work/$prefix.addrs"; done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# elb_config ALGORITHM ADDRS-FILE: an elb-balancer config with the seed's rules, every address
# of ADDRS-FILE in cluster1 and the spare agent in cluster2.
elb_config() {
  cat <<EOF
version = "bench-$1-$(wc -l <"$2")"
[[listeners]]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[limits]
max_connections = 9000
[[rules]]
priority = 10
path_pattern = "/cluster1*"
forward = "cluster1"
[[rules]]
priority = 20
path_pattern = "/cluster2*"
forward = "cluster2"
[default_action]
forward = "cluster1"
[[target_groups]]
name = "cluster1"
algorithm = "$1"
EOF
  while read -r a; do printf '[[target_groups.targets]]\naddress = "%s"\n' "$a"; done <"$2"
  printf '[[target_groups]]\nname = "cluster2"\nalgorithm = "round_robin"\n'
  printf '[[target_groups.targets]]\naddress = "%s"\n' "$spare"
}

# start_elb NAME CONFIG: starts a balancer; sets $front, $admin and $pid.
start_elb() {
  "$lb_bin" "$2" >"$work/$1.out" 2>"$work/$1.err" &
  pid=$!; pids+=("$pid")
  front=$(wait_line "$work/$1.out" 'listening on ')
  admin=$(wait_line "$work/$1.out" 'admin on ')
}

# healthy ADMIN N: waits until cluster1 of the balancer at ADMIN has N healthy targets (60 s at
# most); prints the seconds it took.
healthy() {
  python3 - "$1" "$2" <<'PY'
import json, sys, time, urllib.request
admin, want, start = sys.argv[1], int(sys.argv[2]), time.monotonic()
while time.monotonic() - start < 60:
    status = json.load(urllib.request.urlopen(f"http://{admin}/status"))
    if status["groups"][0]["healthy_targets"] == want:
        print(f"{time.monotonic() - start:.3f}")
        sys.exit(0)
    time.sleep(0.02)
sys.exit(f"{admin}: not {want} healthy targets after 60 s")
PY
}

# A process and its children (nginx's master and workers), for RSS and CPU.
tree() { echo "$1" "$(pgrep -P "$1" | tr '\n' ' ')"; }
rss_kib() {
  local kib=0 p
  for p in $(tree "$1"); do kib=$((kib + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status"))); done
  echo "$kib"
}
cpu_ticks() {
  local ticks=0 p
  for p in $(tree "$1"); do ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$ticks"
}

# load NAME PID URL CONNECTIONS: one wrk round (with the flags in wrk_extra); appends name,
# connections, req/s, p50, p99, requests, CPU ticks of PID and the peak RSS seen to
# $work/results.
wrk_extra=()
load() {
  local name=$1 pid=$2 url=$3 c=$4 peak=0 out="$work/wrk.txt" threads=2
  [ "$c" -lt 2 ] && threads=1
  local before; before=$(cpu_ticks "$pid")
  "${load_cpu[@]}" wrk -t"$threads" -c"$c" -d"$duration" --latency "${wrk_extra[@]}" "$url" >"$out" &
  local wrk_pid=$!
  while kill -0 "$wrk_pid" 2>/dev/null; do
    local now; now=$(rss_kib "$pid"); [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.25
  done
  wait "$wrk_pid"
  if grep -q 'Non-2xx\|Socket errors' "$out"; then echo "$name c$c: errors!" >&2; cat "$out" >&2; exit 1; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$c" \
    "$(awk '/^Requests\/sec:/ {print $2}' "$out")" \
    "$(awk '$1 == "50%" {print $2}' "$out")" "$(awk '$1 == "99%" {print $2}' "$out")" \
    "$(awk '/requests in/ {print $1}' "$out")" \
    "$(($(cpu_ticks "$pid") - before))" "$peak" >>"$work/results"
  printf '.'
}

echo "== starting 5 agents (4 in cluster1, 1 in cluster2)"
agents 4 a
agents 1 spare
spare=$(cat "$work/spare.addrs")
direct=$(head -1 "$work/a.addrs")
direct_pid=${pids[0]}

# haproxy_config PORT ADDRS-FILE: HAProxy with the same rules, every address of ADDRS-FILE in
# cluster1 and the spare agent in cluster2.
haproxy_config() {
  cat <<EOF
global
  nbthread $cores
  maxconn 9000
defaults
  mode http
  option http-keep-alive
  option forwardfor
  http-reuse always
  timeout connect 1s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:$1
  use_backend cluster1 if { path_beg /cluster1 }
  use_backend cluster2 if { path_beg /cluster2 }
  default_backend cluster1
backend cluster1
  balance roundrobin
  option httpchk GET /healthz
EOF
  local n=0 a
  while read -r a; do n=$((n + 1)); echo "  server a$n $a check inter 2s"; done <"$2"
  printf 'backend cluster2\n  balance roundrobin\n  option httpchk GET /healthz\n'
  echo "  server s1 $spare check inter 2s"
}

haproxy_port=$(free_port)
haproxy_config "$haproxy_port" "$work/a.addrs" >"$work/haproxy.cfg"
haproxy -c -q -f "$work/haproxy.cfg"
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.out" 2>&1 &
haproxy_pid=$!; pids+=("$haproxy_pid")

# nginx_config PORT ADDRS-FILE: nginx with the same rules (`location /cluster2` and a default
# `location /`), every address of ADDRS-FILE in cluster1 and the spare agent in cluster2;
# keep-alive to the backends, one worker per core, logs off.
nginx_config() {
  cat <<EOF
user root;
worker_processes $cores;
worker_rlimit_nofile 20000;
error_log $work/nginx-$1.log error;
pid $work/nginx-$1.pid;
daemon off;
events { worker_connections 12000; }
http {
  access_log off;
  client_body_temp_path $work/nginx-body;
  proxy_temp_path $work/nginx-proxy;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_set_header Host \$host;
  proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
  upstream cluster1 {
EOF
  local a
  while read -r a; do echo "    server $a;"; done <"$2"
  cat <<EOF
    keepalive 256;
  }
  upstream cluster2 { server $spare; keepalive 256; }
  server {
    listen 127.0.0.1:$1 backlog=4096;
    location /cluster2 { proxy_pass http://cluster2; }
    location / { proxy_pass http://cluster1; }
  }
}
EOF
}

# start_nginx PORT CONFIG: starts nginx; sets $pid (the master's).
start_nginx() {
  nginx -t -q -c "$2"
  nginx -c "$2" >"$work/nginx-$1.out" 2>&1 &
  pid=$!; pids+=("$pid")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/cluster1" >/dev/null && return 0; sleep 0.1; done
  echo "nginx on port $1 did not start:" >&2; cat "$work/nginx-$1.log" >&2; exit 1
}

nginx_port=$(free_port)
nginx_config "$nginx_port" "$work/a.addrs" >"$work/nginx.conf"
start_nginx "$nginx_port" "$work/nginx.conf"; nginx_pid=$pid

elb_config round_robin "$work/a.addrs" >"$work/rr.toml"
elb_config p2c_peak_ewma "$work/a.addrs" >"$work/p2c.toml"
start_elb rr "$work/rr.toml"; rr_front=$front rr_admin=$admin rr_pid=$pid
start_elb p2c "$work/p2c.toml"; p2c_front=$front p2c_pid=$pid
healthy "$rr_admin" 4 >/dev/null
healthy "$admin" 4 >/dev/null
baseline=${BENCH_BASELINE:-}
if [ -n "$baseline" ]; then
  lb_bin_ours=$lb_bin lb_bin=$baseline
  start_elb base "$work/rr.toml"; base_front=$front base_pid=$pid
  lb_bin=$lb_bin_ours
  healthy "$admin" 4 >/dev/null
fi
access_log=${BENCH_ACCESS_LOG:-1}
if [ "$access_log" = 1 ]; then
  { cat "$work/rr.toml"; printf '[access_log]\npath = "%s"\n' "$work/access.log"; } >"$work/log.toml"
  start_elb log "$work/log.toml"; log_front=$front log_pid=$pid log_admin=$admin
  healthy "$admin" 4 >/dev/null
fi
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$haproxy_port/cluster1" >/dev/null && break; sleep 0.1; done
sleep 1
{
  echo "direct=$(rss_kib "$direct_pid")"; echo "haproxy=$(rss_kib "$haproxy_pid")"
  echo "nginx=$(rss_kib "$nginx_pid")"
  echo "elb-rr=$(rss_kib "$rr_pid")"; echo "elb-p2c=$(rss_kib "$p2c_pid")"
  if [ -n "$baseline" ]; then echo "base-rr=$(rss_kib "$base_pid")"; fi
  if [ "$access_log" = 1 ]; then echo "elb-log=$(rss_kib "$log_pid")"; fi
} >"$work/idle"

echo "== wrk -d$duration --latency (-t1 at -c1, else -t2), GET /cluster1, $pinning, $cores cores"
echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '   %s interleaved rounds of every server at -c %s ' "$rounds" "$connections"
for _ in $(seq "$rounds"); do
  for c in $connections; do
    load direct "$direct_pid" "http://$direct/cluster1" "$c"
    load haproxy "$haproxy_pid" "http://127.0.0.1:$haproxy_port/cluster1" "$c"
    load nginx "$nginx_pid" "http://127.0.0.1:$nginx_port/cluster1" "$c"
    load elb-rr "$rr_pid" "http://$rr_front/cluster1" "$c"
    load elb-p2c "$p2c_pid" "http://$p2c_front/cluster1" "$c"
    if [ -n "$baseline" ]; then load base-rr "$base_pid" "http://$base_front/cluster1" "$c"; fi
    if [ "$access_log" = 1 ]; then load elb-log "$log_pid" "http://$log_front/cluster1" "$c"; fi
  done
done
echo
echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
log_args=()
if [ "$access_log" = 1 ]; then
  sleep 1
  # elb_request_count_total counts every request the log balancer routed (health checks are
  # not requests); each should have its line, and none dropped.
  metric() { curl -s "http://$log_admin/metrics" | awk -v m="$1" '$1 ~ "^"m {s += $2} END {printf "%d", s}'; }
  echo "requests=$(metric elb_request_count_total) lines=$(wc -l <"$work/access.log") written=$(metric elb_access_log_lines_total) dropped=$(metric elb_access_log_dropped_total) bytes=$(stat -c %s "$work/access.log")" >"$work/access-log"
  log_args=(--access-log "$work/access-log")
fi

burst_args=()
if [ "$burst_clients" -gt 0 ]; then
  # burst NAME PID ADDRESS: $burst_clients clients at once (scripts/bench/burst.py, on the load
  # cpu); appends `name answers-JSON idle-KiB open-KiB after-KiB after-seconds` to
  # $work/burst. RSS is read while the clients hold their connections open, then every second
  # after they close until it is under 32 MiB or 60 s have passed.
  burst() {
    local name=$1 pid=$2 address=$3 out="$work/burst-$1.txt" idle open after=0 waited=0
    idle=$(rss_kib "$pid")
    "${load_cpu[@]}" python3 "$root/scripts/bench/burst.py" "$address" /cluster1 "$burst_clients" 3 >"$out" &
    local client=$!
    until grep -q '^{' "$out"; do
      kill -0 "$client" 2>/dev/null || { echo "the burst client failed" >&2; exit 1; }
      sleep 0.1
    done
    sleep 2
    open=$(rss_kib "$pid")
    wait "$client"
    while [ "$waited" -lt 60 ]; do
      sleep 1; waited=$((waited + 1))
      after=$(rss_kib "$pid")
      [ "$after" -lt 32768 ] && break
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$(head -1 "$out")" "$idle" "$open" "$after" "$waited" >>"$work/burst"
    printf '.'
  }
  echo "== the burst: $burst_clients clients at once, each one GET on its own kept-open connection,"
  echo "   to 1 and to 4 bare hyper targets (tokio's default accept backlog), through elb and nginx"
  for n in 1 4; do
    for i in $(seq "$n"); do
      "${server_cpu[@]}" "$bare_bin" 127.0.0.1:0 1024 >"$work/bare$n-$i.out" 2>&1 &
      pids+=("$!")
    done
    for i in $(seq "$n"); do wait_line "$work/bare$n-$i.out" 'listening on ' >>"$work/bare$n.addrs"; done
    # The bare targets in cluster1 (they answer the health checks too), the defaults else.
    elb_config round_robin "$work/bare$n.addrs" |
      sed 's/^max_connections = 9000$/max_connections = 12000/' >"$work/burst$n.toml"
    printf '   %s target(s) ' "$n"
    start_elb "burst$n" "$work/burst$n.toml"; healthy "$admin" "$n" >/dev/null
    burst "elb-$n" "$pid" "$front"
    kill "$pid"
    port=$(free_port)
    nginx_config "$port" "$work/bare$n.addrs" >"$work/nginx-burst$n.conf"
    start_nginx "$port" "$work/nginx-burst$n.conf"
    burst "nginx-$n" "$pid" "127.0.0.1:$port"
    kill "$pid"
    echo
  done
  burst_args=(--burst "$work/burst")
fi
scale_args=()

if [ "$scale_targets" -gt 0 ]; then
  echo "== $scale_targets targets: starting $((scale_targets - 4)) more agents"
  cp "$work/a.addrs" "$work/big.addrs"
  agents $((scale_targets - 4)) b
  cat "$work/b.addrs" >>"$work/big.addrs"
  elb_config round_robin "$work/big.addrs" >"$work/big.toml"
  # A balancer started with 4 targets, then reloaded to all of them.
  cp "$work/rr.toml" "$work/scale.toml"
  start_elb scale "$work/scale.toml"; scale_front=$front scale_admin=$admin scale_pid=$pid
  # HAProxy with the same targets, as a control: what the backends themselves cost.
  big_haproxy_port=$(free_port)
  haproxy_config "$big_haproxy_port" "$work/big.addrs" >"$work/haproxy-big.cfg"
  haproxy -db -f "$work/haproxy-big.cfg" >"$work/haproxy-big.out" 2>&1 &
  big_haproxy_pid=$!; pids+=("$big_haproxy_pid")
  healthy "$scale_admin" 4 >/dev/null
  cp "$work/big.toml" "$work/scale.toml"
  kill -HUP "$scale_pid"
  all_healthy=$(healthy "$scale_admin" "$scale_targets")
  reload_add=$(wait_line "$work/scale.err" '.*config reloaded in ' | cut -d' ' -f1)
  # And once more with the same targets (a new version label): the steady-state reload.
  sed -i 's/^version = .*/version = "bench-again"/' "$work/scale.toml"
  kill -HUP "$scale_pid"
  sleep 0.5
  reload_same=$(sed -n 's/.*config reloaded in //p' "$work/scale.err" | sed -n 2p | cut -d' ' -f1)
  sleep 1
  scale_idle=$(rss_kib "$scale_pid")
  printf '   %s interleaved rounds at -c64 and -c256, 4 targets and %s ' "$rounds" "$scale_targets"
  for _ in $(seq "$rounds"); do
    for c in 64 256; do
      load elb-rr-4 "$rr_pid" "http://$rr_front/cluster1" "$c"
      load "elb-rr-$scale_targets" "$scale_pid" "http://$scale_front/cluster1" "$c"
      load haproxy-4 "$haproxy_pid" "http://127.0.0.1:$haproxy_port/cluster1" "$c"
      load "haproxy-$scale_targets" "$big_haproxy_pid" "http://127.0.0.1:$big_haproxy_port/cluster1" "$c"
    done
  done
  echo
  echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  scale_args=(--scale "$scale_targets" "$reload_add" "$reload_same" "$all_healthy" "$scale_idle")
fi

tls_args=()
if [ "${BENCH_TLS:-1}" = 1 ]; then
  # HTTPS with the same ECDSA P-256 certificate through elb and HAProxy (OpenSSL): wrk with
  # keep-alive, wrk with `Connection: close` (every request a new TCP connection and a full
  # handshake: wrk resumes no session), and h2load's HTTP/2 (ALPN h2) to the same HTTP/1.1 agents.
  command -v h2load >/dev/null || {
    echo "== installing nghttp2-client (h2load)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nghttp2-client
  }
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=bench.example.test -addext subjectAltName=DNS:bench.example.test \
    -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
  chmod 600 "$work/tls.key"
  cat "$work/tls.crt" "$work/tls.key" >"$work/tls.pem"
  elb_config round_robin "$work/a.addrs" | sed "0,/^address = \"127.0.0.1:0\"$/s||&\\
protocol = \"https\"\\
[[listeners.certificates]]\\
cert = \"$work/tls.crt\"\\
key = \"$work/tls.key\"|" >"$work/https.toml"
  start_elb https "$work/https.toml"; https_front=$front https_pid=$pid
  healthy "$admin" 4 >/dev/null
  tls_port=$(free_port)
  haproxy_config "$tls_port" "$work/a.addrs" |
    sed "s|^  bind 127.0.0.1:$tls_port$|& ssl crt $work/tls.pem alpn h2,http/1.1|" >"$work/haproxy-tls.cfg"
  haproxy -c -q -f "$work/haproxy-tls.cfg"
  haproxy -db -f "$work/haproxy-tls.cfg" >"$work/haproxy-tls.out" 2>&1 &
  tls_haproxy_pid=$!; pids+=("$tls_haproxy_pid")
  for _ in $(seq 100); do curl -skf "https://127.0.0.1:$tls_port/cluster1" >/dev/null && break; sleep 0.1; done
  # h2 NAME URL: one h2load round (4 connections, 32 streams each); appends `name req/s` to
  # $work/h2.
  h2() {
    "${load_cpu[@]}" h2load -c 4 -m 32 -t 1 -D "${duration%s}" "$2" >"$work/h2load.txt" 2>&1
    grep -q ' 0 failed, 0 errored' "$work/h2load.txt" || { echo "$1: errors!" >&2; cat "$work/h2load.txt" >&2; exit 1; }
    echo "$1 $(awk '/^finished in/ {print $4}' "$work/h2load.txt")" >>"$work/h2"
    printf '.'
  }
  echo "== HTTPS: wrk -c64 keep-alive and with Connection: close (new handshakes), h2load -c4 -m32"
  printf '   %s interleaved rounds ' "$rounds"
  for _ in $(seq "$rounds"); do
    load elb-https "$https_pid" "https://$https_front/cluster1" 64
    load haproxy-https "$tls_haproxy_pid" "https://127.0.0.1:$tls_port/cluster1" 64
    wrk_extra=(-H "Connection: close")
    load elb-handshakes "$https_pid" "https://$https_front/cluster1" 64
    load haproxy-handshakes "$tls_haproxy_pid" "https://127.0.0.1:$tls_port/cluster1" 64
    wrk_extra=()
    h2 elb-h2 "https://$https_front/cluster1"
    h2 haproxy-h2 "https://127.0.0.1:$tls_port/cluster1"
  done
  echo
  tls_args=(--h2 "$work/h2")
fi

instructions_args=()
if [ "${BENCH_CALLGRIND:-1}" = 1 ] && command -v valgrind >/dev/null; then
  # Instructions per request (user space only) are the steadiest figure on a busy machine.
  echo "== instructions per request: valgrind --tool=callgrind, wrk -t1 -c8 -d10s (after 2 s of warm-up)"
  # callgrind NAME PORT COMMAND...: appends `NAME instructions allocations` (per request;
  # the stripped balancer's allocations are not counted) to $work/instructions.
  callgrind() {
    callgrind_per_request "$@" >>"$work/instructions"
    printf '.'
  }
  printf '   '
  cg_port=$(free_port)
  sed "0,/127.0.0.1:0/s//127.0.0.1:$cg_port/" "$work/rr.toml" >"$work/cg-rr.toml"
  callgrind elb-rr "$cg_port" "$lb_bin" "$work/cg-rr.toml"
  cg_port=$(free_port)
  haproxy_config "$cg_port" "$work/a.addrs" >"$work/cg-haproxy.cfg"
  callgrind haproxy "$cg_port" haproxy -db -f "$work/cg-haproxy.cfg"
  if [ -n "$baseline" ]; then
    cg_port=$(free_port)
    sed "0,/127.0.0.1:0/s//127.0.0.1:$cg_port/" "$work/rr.toml" >"$work/cg-base.toml"
    callgrind base-rr "$cg_port" "$baseline" "$work/cg-base.toml"
  fi
  if [ "$access_log" = 1 ]; then
    cg_port=$(free_port)
    sed "0,/127.0.0.1:0/s//127.0.0.1:$cg_port/" "$work/log.toml" >"$work/cg-log.toml"
    callgrind elb-log "$cg_port" "$lb_bin" "$work/cg-log.toml"
  fi
  echo
  instructions_args=(--instructions "$work/instructions")
fi

python3 "$root/scripts/bench/balancer_summary.py" "$work/results" --idle "$work/idle" \
  --binary "$lb_bin" --load "$(cut -d' ' -f1-3 /proc/loadavg)" "${burst_args[@]}" \
  "${scale_args[@]}" "${instructions_args[@]}" "${tls_args[@]}" "${log_args[@]}"
