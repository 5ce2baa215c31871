#!/usr/bin/env bash
# The keyless demo: builds everything, makes a throwaway CA and keys, starts a keyserver on
# 127.0.0.1, starts `openssl s_server` twice (an RSA key by URI, an EC key by stub file), connects
# with openssl s_client and curl, and shows that every private-key operation happened on the
# keyserver. Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target keyserver keyless keyless-tool >/dev/null

work=$(mktemp -d /tmp/keyless-demo.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() {  # a port nothing listens on (bash only: a minimal Debian has no python)
    local p; while :; do p=$(shuf -i 20000-60000 -n 1); (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null || { echo "$p"; return; }; done
}
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "throwaway PKI and keys in $work/pki"
tests/gen-pki.sh "$work/pki"
pki=$work/pki

say "keyserver on 127.0.0.1 (keys never leave it)"
cat > "$work/keyserver.json" <<JSON
{ "keys": { "rsa2048": {"allow": ["sign-tls", "rsa-decrypt-tls"]},
            "p256":    {"allow": ["sign-tls"]} } }
JSON
build/keyserver/keyserver --config "$work/keyserver.json" --keys "$pki/keys" \
    --cert "$pki/keyserver.crt" --key "$pki/keyserver.key" --client-ca "$pki/ca.crt" \
    --listen 127.0.0.1:0 --ready-file "$work/ready" --access-log "$work/access.log" \
    2> "$work/keyserver.err" &
pids+=($!)
for _ in $(seq 100); do [[ -s $work/ready ]] && break; sleep 0.05; done
ks=$(cat "$work/ready")
echo "keyserver listening on $ks"

cat > "$work/openssl.cnf" <<CNF
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
keyless = keyless_sect
[default_sect]
activate = 1
[keyless_sect]
module = $PWD/build/provider/keyless.so
activate = 1
client_cert = $pki/edge-1.crt
client_key = $pki/edge-1.key
ca_file = $pki/ca.crt
CNF
export OPENSSL_CONF=$work/openssl.cnf

say "keyless-tool ping / stub"
build/provider/keyless-tool ping "keyless:$ks/rsa2048" --count 5
build/provider/keyless-tool stub "keyless:$ks/p256" -o "$work/p256.stub.pem"
head -2 "$work/p256.stub.pem"; echo "..."

rsa_port=$(free_port); ec_port=$(free_port)
openssl s_server -accept "127.0.0.1:$rsa_port" -cert "$pki/certs/rsa2048.crt" \
    -key "keyless:$ks/rsa2048" -www > "$work/s_server_rsa.log" 2>&1 &
pids+=($!)
openssl s_server -accept "127.0.0.1:$ec_port" -cert "$pki/certs/p256.crt" \
    -key "$work/p256.stub.pem" -www > "$work/s_server_ec.log" 2>&1 &
pids+=($!)
wait_port "$rsa_port"; wait_port "$ec_port"
echo "s_server -key keyless:$ks/rsa2048   on 127.0.0.1:$rsa_port"
echo "s_server -key $work/p256.stub.pem   on 127.0.0.1:$ec_port"

handshake() {
    local port=$1; shift
    echo | openssl s_client -connect "127.0.0.1:$port" -servername localhost -CAfile "$pki/ca.crt" \
        -verify_return_error "$@" 2>&1 |
        grep -E "^(Protocol|Peer signature type|Verify return code|New,)" | sed 's/^/    /'
}
say "openssl s_client: TLS 1.3, RSA key by URI"
handshake "$rsa_port" -tls1_3
say "openssl s_client: TLS 1.2 RSA key exchange (the keyserver decrypts the premaster)"
handshake "$rsa_port" -tls1_2 -cipher AES128-GCM-SHA256
say "openssl s_client: TLS 1.3, EC key by stub file"
handshake "$ec_port" -tls1_3
say "curl over TLS 1.2 to the EC edge"
OPENSSL_CONF= curl -sS --tlsv1.2 --tls-max 1.2 --cacert "$pki/ca.crt" \
    --resolve "localhost:$ec_port:127.0.0.1" "https://localhost:$ec_port/" -o "$work/body.html"
grep -m1 -o "Protocol *: .*\|Cipher *: .*" "$work/body.html" | sed 's/^/    /' || true

say "the keyserver's access log: each handshake's private-key operation"
sed 's/^/    /' "$work/access.log"
say "done: the edges never held a private key (see $PWD/README.md to deploy it)"
