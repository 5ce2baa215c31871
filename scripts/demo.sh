#!/usr/bin/env bash
# The keyless demo: builds everything, makes a throwaway CA and keys, starts a keyserver on
# 127.0.0.1, starts `openssl s_server` twice (an RSA key by URI, an EC key by stub file), connects
# with openssl s_client and curl, and shows that every private-key operation happened on the
# keyserver. Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
setup demo
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "throwaway PKI and keys in $work/pki"
tests/gen-pki.sh "$work/pki"
pki=$work/pki

say "keyserver on 127.0.0.1 (keys never leave it)"
cat > "$work/keyserver.json" <<JSON
{ "keys": { "rsa2048": {"allow": ["sign-tls", "rsa-decrypt-tls"]},
            "p256":    {"allow": ["sign-tls"]} } }
JSON
start_keyserver "$work/keyserver.json" --access-log "$work/access.log"
echo "keyserver listening on $ks"

write_openssl_conf "$work/openssl.cnf"
export OPENSSL_CONF=$work/openssl.cnf

say "keyless-tool ping / stub"
build/tools/keyless-tool ping "keyless:$ks/rsa2048" --count 5
build/tools/keyless-tool stub "keyless:$ks/p256" -o "$work/p256.stub.pem"
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
