# Shared by scripts/demo.sh and scripts/bench.sh: process bookkeeping, ports, a keyserver with
# the throwaway PKI, and an openssl.cnf that loads the freshly built keyless.so.
# Bash only (a minimal Debian has no python).

# setup NAME: installs missing packages, builds the three binaries (the tests are not configured:
# they need packages the demo does not), makes $work and the cleanup trap. Call it first.
setup() {
    scripts/install-deps.sh --build >/dev/null
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
    cmake --build build -j "$(nproc)" --target keyserver keyless keyless-tool >/dev/null
    work=$(mktemp -d "/tmp/keyless-$1.XXXXXX")
    trap cleanup EXIT
}

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }

free_port() { # a port nothing listens on
    local p; while :; do p=$(shuf -i 20000-60000 -n 1); (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null || { echo "$p"; return; }; done
}
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

# start_keyserver CONFIG_JSON [FLAGS...]: keys and TLS from $pki; sets ks (IP:PORT), ks_admin
# (the admin listener's IP:PORT) and ks_pid. KEYLESS_BENCH_BUILD (default build) is the build
# tree whose keyserver and keyless.so are run, here and in write_openssl_conf.
start_keyserver() {
    local config=$1; shift
    rm -f "$work/ready"
    "${KEYLESS_BENCH_BUILD:-build}/keyserver/keyserver" --config "$config" --keys "$pki/keys" --cert "$pki/keyserver.crt" \
        --key "$pki/keyserver.key" --client-ca "$pki/ca.crt" --listen 127.0.0.1:0 \
        --admin 127.0.0.1:0 --ready-file "$work/ready" "$@" 2> "$work/keyserver.err" &
    ks_pid=$!
    pids+=("$ks_pid")
    for _ in $(seq 100); do [[ -s $work/ready ]] && break; sleep 0.05; done
    ks=$(sed -n 1p "$work/ready")
    ks_admin=$(sed -n 2p "$work/ready")
}

# write_openssl_conf FILE: default + keyless, the edge-1 client identity from $pki.
write_openssl_conf() {
    cat > "$1" <<CNF
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
keyless = keyless_sect
[default_sect]
activate = 1
[keyless_sect]
module = $(realpath "${KEYLESS_BENCH_BUILD:-build}")/provider/keyless.so
activate = 1
client_cert = $pki/edge-1.crt
client_key = $pki/edge-1.key
ca_file = $pki/ca.crt
CNF
}

# ---- for the benchmarks (scripts/bench.sh, scripts/bench-pq.sh) ----
# They set $secs (seconds per measurement), start a keyserver with start_keyserver (ks, ks_pid)
# and write $work/openssl.cnf; load generators run on $load_cpus.
tick=$(getconf CLK_TCK)
cores=$(nproc)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
field() { sed -E "s/.*\"$1\":([0-9.e+-]+).*/\1/" <<<"$2"; }

# median VALUES / spread VALUES: of space-separated numbers ("min-max" for spread)
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
spread() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%s-%s", lo, hi}'; }

results=()
# verdict NAME MEASURED LIMIT DETAIL: "meets" when MEASURED <= LIMIT
verdict() {
    local v; v=$(awk -v m="$2" -v l="$3" 'BEGIN { print (m <= l) ? "meets " : "MISSES" }')
    results+=("$(printf '%s  %-58s %8s (target <= %s)  %s' "$v" "$1" "$2" "$3" "$4")")
    echo "   $v $1: $2 (target <= $3) $4"
}
load_cpus=1-$((cores - 1))
[[ $cores -lt 2 ]] && load_cpus=0
# run_bench KEY IN_FLIGHT [more bench flags]: sets json and ks_us (keyserver CPU us per op).
# bench_tool and bench_conf (default: this tree's keyless-tool, $work/openssl.cnf) pick another
# build's client.
run_bench() {
    local key=$1 n=$2; shift 2
    local k0 k1; k0=$(cpu_ticks "$ks_pid")
    # One connection: a one-thread keyserver gains nothing from two, and batches better on one.
    json=$(taskset -c "$load_cpus" env OPENSSL_CONF="${bench_conf:-$work/openssl.cnf}" KEYLESS_CONNECTIONS_PER_SERVER=1 "${bench_tool:-build/tools/keyless-tool}" \
        bench "keyless:$ks/$key" --seconds "$secs" --concurrency "$n" --json "$@")
    k1=$(cpu_ticks "$ks_pid")
    ks_us=$(calc "($k1 - $k0) * 1e6 / $tick / $(field operations "$json")" 1)
}
# nginx_handshakes KEYFILE CERT CONF: sets hs (handshakes), ng_us and ks_hs_us (CPU us per handshake)
nginx_handshakes() {
    local dir=$work/nginx port; port=$(free_port)
    rm -rf "$dir"; mkdir -p "$dir/tmp"
    cat > "$dir/nginx.conf" <<NGINX
daemon off;
master_process on;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/tmp;
    ssl_session_cache off;
    ssl_session_tickets off;
    server {
        listen 127.0.0.1:$port ssl;
        ssl_protocols TLSv1.3;
        ssl_certificate $2;
        ssl_certificate_key $1;
        location / { return 200 "ok\n"; }
    }
}
NGINX
    OPENSSL_CONF=$3 /usr/sbin/nginx -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log" &
    local master=$! worker=""
    pids+=("$master")
    wait_port "$port"
    for _ in $(seq 100); do worker=$(pgrep -P "$master" | head -1); [[ -n $worker ]] && break; sleep 0.05; done
    taskset -pc 1 "$worker" >/dev/null 2>&1 || true
    local w0 k0 w1 k1 out total=0 i clients=()
    w0=$(cpu_ticks "$worker"); k0=$(cpu_ticks "$ks_pid")
    # Three clients keep the worker busy (s_time makes one full handshake at a time).
    for i in 1 2 3; do
        openssl s_time -connect "127.0.0.1:$port" -new -time "$secs" -CAfile "$pki/ca.crt" > "$work/s_time.$i" 2>/dev/null &
        clients+=($!)
    done
    wait "${clients[@]}"
    for i in 1 2 3; do
        out=$(awk '/connections in [0-9]+ real seconds/ {print $1}' "$work/s_time.$i" | head -1)
        total=$((total + ${out:-0}))
    done
    w1=$(cpu_ticks "$worker"); k1=$(cpu_ticks "$ks_pid")
    kill "$master"; wait "$master" 2>/dev/null || true
    hs=$total
    ng_us=$(calc "($w1 - $w0) * 1e6 / $tick / $hs" 0)
    ks_hs_us=$(calc "($k1 - $k0) * 1e6 / $tick / $hs" 0)
}
