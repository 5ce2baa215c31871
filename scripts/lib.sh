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
