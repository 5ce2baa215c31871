#!/usr/bin/env bash
# Makes a key inside a PKCS#11 token (SoftHSM2, or any HSM whose module pkcs11-tool can load) that
# can never leave it, or imports an existing PEM key into it, then prints the keyserver's config
# entry for it and writes the edges' stub (offline, from the public key the token holds).
#
# Usage: scripts/hsm-new-key.sh --token LABEL --pin-file FILE --name NAME
#                               (--type ec|ec384|rsa|rsa3072|ed25519 | --import KEY.pem)
#                               [--module PATH] [--keyserver HOST:PORT] [--out DIR]
#   --module     the PKCS#11 module (default: SoftHSM2's, /usr/lib/softhsm/libsofthsm2.so)
#   --keyserver  what the edges dial, for the stub's URI (default 127.0.0.1:2407)
#   --out        where NAME.stub.pem and NAME.pub.pem go (default: the current directory)
# Needs opensc's pkcs11-tool and keyless-tool (docs/hsm.md walks through it).
set -euo pipefail
module=/usr/lib/softhsm/libsofthsm2.so token="" pin_file="" name="" type="" import="" keyserver=127.0.0.1:2407 out=.
die() { echo "hsm-new-key.sh: $*" >&2; exit 1; }
while (($#)); do
    case $1 in
    --module) module=$2 ;; --token) token=$2 ;; --pin-file) pin_file=$2 ;; --name) name=$2 ;;
    --type) type=$2 ;; --import) import=$2 ;; --keyserver) keyserver=$2 ;; --out) out=$2 ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
    shift 2 || die "$1 needs a value"
done
[[ -n $token && -n $pin_file && -n $name ]] || die "--token, --pin-file and --name are required"
[[ -n $type || -n $import ]] || die "give --type or --import"
[[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die "--name: letters, digits, '.', '_', '-' only"
[[ -r $pin_file ]] || die "cannot read the PIN file $pin_file"
command -v pkcs11-tool >/dev/null || die "pkcs11-tool is missing (apt-get install opensc)"
command -v keyless-tool >/dev/null || die "keyless-tool is missing (the keyless-provider package)"
pin=$(head -1 "$pin_file")
p11() { pkcs11-tool --module "$module" --token-label "$token" --login --pin "$pin" "$@"; }

# A fresh CKA_ID: the next free one-byte value after those the token uses.
# Object IDs in use, as hex: opensc 0.23-0.26 (Debian 12, 13) print "ID: 01", 0.27 (sid)
# "ID: 1 (0x01)".
used=$(p11 --list-objects 2>/dev/null | sed -n 's/^ *ID: *//p' |
    sed -E 's/^[0-9]+ \(0x([0-9a-fA-F]+)\)$/\1/' | tr 'A-F' 'a-f' | sort -u)
for i in $(seq 1 255); do
    id=$(printf '%02x' "$i")
    grep -qx "$id" <<<"$used" || break
done
p11 --list-objects 2>/dev/null | grep -q "label: *$name\$" && die "the token already has an object labelled $name"

if [[ -n $import ]]; then
    # The key is written as sensitive and not extractable; delete the PEM file afterwards.
    openssl pkey -in "$import" -pubout -out "$out/$name.pub.pem"
    p11 --write-object "$import" --type privkey --id "$id" --label "$name" --usage-sign \
        --usage-decrypt --sensitive >/dev/null
    p11 --write-object "$out/$name.pub.pem" --type pubkey --id "$id" --label "$name" >/dev/null
else
    case $type in
    ec) spec=EC:prime256v1 ;; ec384) spec=EC:secp384r1 ;; rsa) spec=rsa:2048 ;;
    rsa3072) spec=rsa:3072 ;; ed25519) spec=EC:edwards25519 ;;
    *) die "--type: ec, ec384, rsa, rsa3072 or ed25519" ;;
    esac
    usage=--usage-sign
    [[ $spec == rsa:* ]] && usage="--usage-sign --usage-decrypt"
    # shellcheck disable=SC2086
    p11 --keypairgen --key-type "$spec" --id "$id" --label "$name" $usage --sensitive >/dev/null
    p11 --read-object --type pubkey --id "$id" --output-file "$out/$name.pub.der" >/dev/null
    openssl pkey -pubin -inform DER -in "$out/$name.pub.der" -out "$out/$name.pub.pem"
    rm -f "$out/$name.pub.der"
    p11 --list-objects --type privkey --id "$id" 2>/dev/null | grep -q "never extractable" ||
        echo "warning: the token does not report the key as never extractable" >&2
fi
keyless-tool stub "keyless:$keyserver/$name" --from-cert "$out/$name.pub.pem" -o "$out/$name.stub.pem"

allow='"sign-tls"'
grep -q "BEGIN PUBLIC KEY" "$out/$name.pub.pem" && openssl pkey -pubin -in "$out/$name.pub.pem" -noout -text |
    grep -q "Modulus" && allow='"sign-tls", "rsa-decrypt-tls"'
cat <<EOF
The key is in token '$token' as object '$name' (CKA_ID $id). The keyserver's config gets:

  "pkcs11": {"module": "$module", "pin_file": "$(realpath "$pin_file")"},
  "keys": {
    "$name": {"pkcs11": "pkcs11:token=$token;object=$name", "allow": [$allow]}
  }

Edges load $out/$name.stub.pem as the private key (nginx ssl_certificate_key), with a
certificate for $out/$name.pub.pem from your CA.
EOF
