#!/usr/bin/env bash
# keyless benchmarks, every ratio measured in this one run on this machine:
#  1. keyserver signatures/s (one worker thread) vs `openssl speed` on one core;
#  2. full TLS 1.3 handshakes/s through `openssl s_server`, local key vs keyless key, with the
#     server-side CPU per handshake (s_server + keyserver).
# Usage: scripts/bench.sh [SECONDS]   (default 5 per measurement; about 12 x SECONDS in all)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
source scripts/lib.sh
setup bench
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

tests/gen-pki.sh "$work/pki" >/dev/null
pki=$work/pki
echo '{"keys": {"rsa2048": {"allow": ["sign-tls"]}, "p256": {"allow": ["sign-tls"]}}}' > "$work/ks.json"
start_keyserver "$work/ks.json" --threads 1
write_openssl_conf "$work/openssl.cnf"

echo "machine: $(nproc) cores, $(openssl version), ${secs}s per measurement"
echo
echo "1. keyserver (1 worker thread, 32 requests in flight over mTLS) vs openssl speed (1 core)"
speed=$(openssl speed -seconds "$secs" rsa2048 ecdsap256 2>/dev/null)
rsa_speed=$(awk '/^rsa 2048 bits/ {print $6}' <<<"$speed")
ec_speed=$(awk '/nistp256/ {print $7}' <<<"$speed")
rsa_ks=$(OPENSSL_CONF=$work/openssl.cnf build/tools/keyless-tool bench "keyless:$ks/rsa2048" --seconds "$secs" | sed -E 's/.* ([0-9]+) ops\/s.*/\1/')
ec_ks=$(OPENSSL_CONF=$work/openssl.cnf build/tools/keyless-tool bench "keyless:$ks/p256" --seconds "$secs" | sed -E 's/.* ([0-9]+) ops\/s.*/\1/')
printf '   %-10s openssl speed %8.0f sign/s   keyserver %8.0f sign/s   ratio %s\n' \
    RSA-2048 "$rsa_speed" "$rsa_ks" "$(ratio "$rsa_ks" "$rsa_speed")" \
    P-256 "$ec_speed" "$ec_ks" "$(ratio "$ec_ks" "$ec_speed")"

echo
echo "2. TLS 1.3 full handshakes (openssl s_time -new, no resumption): local key vs keyless key"
handshakes() { # port -> "connections seconds"
    openssl s_time -connect "127.0.0.1:$1" -new -time "$secs" -CAfile "$pki/ca.crt" 2>/dev/null |
        awk '/connections in [0-9]+ real seconds/ {print $1, $4}'
}
tick=$(getconf CLK_TCK)
for key in rsa2048 p256; do
    OPENSSL_CONF=$work/openssl.cnf build/tools/keyless-tool stub "keyless:$ks/$key" \
        -o "$work/$key.stub.pem" 2>/dev/null
    declare -A rate cpu
    for mode in local keyless; do
        port=$(free_port)
        if [[ $mode == local ]]; then keyarg=$pki/keys/$key.pem; conf=/dev/null; else keyarg=$work/$key.stub.pem; conf=$work/openssl.cnf; fi
        OPENSSL_CONF=$conf openssl s_server -accept "127.0.0.1:$port" -cert "$pki/certs/$key.crt" \
            -key "$keyarg" -tls1_3 -no_cache -num_tickets 0 -quiet >/dev/null 2>&1 &
        srv=$!
        pids+=("$srv")
        wait_port "$port"
        s0=$(cpu_ticks "$srv"); k0=$(cpu_ticks "$ks_pid")
        read -r n t < <(handshakes "$port")
        s1=$(cpu_ticks "$srv"); k1=$(cpu_ticks "$ks_pid")
        kill "$srv"
        rate[$mode]=$(awk -v n="$n" -v t="$t" 'BEGIN { printf "%.0f", n / t }')
        used=$(( s1 - s0 ))
        [[ $mode == keyless ]] && used=$(( used + k1 - k0 ))
        cpu[$mode]=$(awk -v u="$used" -v n="$n" -v h="$tick" 'BEGIN { printf "%.3f", u * 1000 / h / n }')
    done
    printf '   %-8s local %6s hs/s (%s ms CPU/hs)   keyless %6s hs/s (%s ms CPU/hs, s_server + keyserver)   rate ratio %s\n' \
        "$key" "${rate[local]}" "${cpu[local]}" "${rate[keyless]}" "${cpu[keyless]}" "$(ratio "${rate[keyless]}" "${rate[local]}")"
    unset rate cpu
done
echo
echo "On a 2-core machine the s_time client shares the cores with the server and the keyserver:"
echo "compare CPU per handshake as well as the rates."
