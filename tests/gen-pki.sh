#!/usr/bin/env bash
# Makes a throwaway PKI for tests and the demo in DIR:
#   ca.{crt,key}          the CA for keyserver mTLS and for the edge certificates
#   keyserver.{crt,key}   the keyserver's server certificate (127.0.0.1-3, ::1, localhost: a fleet
#                         of three keyservers on one machine)
#   edge-1.{crt,key}      a client certificate (CN edge-1), edge-2 likewise
#   other-ca.{crt,key}, rogue.{crt,key}   a client from a CA the keyserver does not trust
#   keys/NAME.pem         private keys the keyserver serves (mode 600)
#   certs/NAME.crt        a certificate (CN localhost, server and client auth) for each served
#                         key, for TLS terminators and keyless client certificates
# Usage: tests/gen-pki.sh DIR   (DIR is created; existing files are kept, so reruns are cheap)
set -euo pipefail
dir=${1:?usage: gen-pki.sh DIR}
mkdir -p "$dir/keys" "$dir/certs"
cd "$dir"
umask 077

days=365
[[ -f ca.crt ]] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout ca.key -out ca.crt -days $days -subj "/CN=keyless test CA" 2>/dev/null
[[ -f other-ca.crt ]] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout other-ca.key -out other-ca.crt -days $days -subj "/CN=some other CA" 2>/dev/null

# issue NAME CA SUBJECT-CN EXT [KEYFILE]
issue() {
    local name=$1 ca=$2 cn=$3 ext=$4 key=${5:-$1.key}
    [[ -f $name.crt ]] && return 0
    [[ -f $key ]] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key"
    openssl req -new -key "$key" -subj "/CN=$cn" -out "$name.csr" 2>/dev/null
    openssl x509 -req -in "$name.csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial \
        -days $days -extfile <(printf '%s\n' "$ext") -out "$name.crt" 2>/dev/null
    rm -f "$name.csr"
}
server_ext='subjectAltName=IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,IP:::1,DNS:localhost
extendedKeyUsage=serverAuth
keyUsage=digitalSignature,keyEncipherment'
client_ext='extendedKeyUsage=clientAuth
keyUsage=digitalSignature'
# Served keys' certificates also allow client authentication (keyless client certificates).
served_ext='subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth
keyUsage=digitalSignature,keyEncipherment'
issue keyserver ca keyserver "$server_ext"
issue edge-1 ca edge-1 "subjectAltName=DNS:edge-1.example
$client_ext"
issue edge-2 ca edge-2 "subjectAltName=DNS:edge-2.example
$client_ext"
issue rogue other-ca edge-1 "$client_ext"

key() {
    local name=$1; shift
    [[ -f keys/$name.pem ]] || openssl genpkey -quiet "$@" -out "keys/$name.pem"
    issue "certs/$name" ca localhost "$served_ext" "keys/$name.pem"
}
key rsa2048 -algorithm RSA -pkeyopt rsa_keygen_bits:2048
key rsa3072 -algorithm RSA -pkeyopt rsa_keygen_bits:3072
key p256 -algorithm EC -pkeyopt ec_paramgen_curve:P-256
key p384 -algorithm EC -pkeyopt ec_paramgen_curve:P-384
key rsa-default -algorithm RSA -pkeyopt rsa_keygen_bits:2048
key ec-restricted -algorithm EC -pkeyopt ec_paramgen_curve:P-256
key ed25519 -algorithm ED25519
key ed448 -algorithm ED448
# ML-DSA where this OpenSSL has it (3.5 and later); tests that use these keys check the same.
if openssl list -signature-algorithms 2>/dev/null | grep -q "ML-DSA-65"; then
    key mldsa44 -algorithm ML-DSA-44
    key mldsa65 -algorithm ML-DSA-65
    key mldsa87 -algorithm ML-DSA-87
fi
chmod 600 keys/*.pem
chmod 644 ./*.crt certs/*.crt
rm -f ./*.srl certs/*.srl
