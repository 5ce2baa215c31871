#!/usr/bin/env bash
# Post-quantum benchmarks (docs/benchmarks.md), where OpenSSL has ML-DSA (3.5 and later: Debian
# 13, sid). Each figure is a ratio to a baseline measured in this run on this machine:
#   1. keyserver CPU per ML-DSA-65 signature (sign-tls, --threads 1 on core 0) at 1 and 32 in
#      flight vs `openssl speed ML-DSA-65` on core 0
#   2. the wire: round trip p50 at 1 in flight minus the time inside the keyserver (its access
#      log), ML-DSA-65 (a 3,309-byte signature back) vs P-256 (72 bytes)
#   3. nginx (1 worker, no session cache or tickets) CPU per full TLS 1.3 handshake with an
#      ML-DSA-65 certificate, keyless stub vs local key, with the keyserver's CPU beside it
# Usage: scripts/bench-pq.sh [SECONDS]   (default 5 per measurement)
# From a Debian 12 machine (as root): scripts/platforms.sh has the Debian 13 root; there,
#   cd /src && scripts/bench-pq.sh
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
if ! openssl list -signature-algorithms 2>/dev/null | grep -q "ML-DSA-65"; then
    echo "bench-pq.sh: $(openssl version) has no ML-DSA; run it where OpenSSL is 3.5 or later" >&2
    exit 2
fi
source scripts/lib.sh
setup bench-pq
scripts/install-deps.sh --bench >/dev/null
tests/gen-pki.sh "$work/pki" >/dev/null
pki=$work/pki
echo '{"keys": {"mldsa65": {"allow": ["sign-tls"]}, "p256": {"allow": ["sign-tls"]}}}' > "$work/ks.json"
write_openssl_conf "$work/openssl.cnf"
echo "machine: $cores cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(openssl version), ${secs}s per measurement"

echo
echo "1. keyserver CPU per ML-DSA-65 signature vs openssl speed on core 0"
speed=$(taskset -c 0 openssl speed -seconds "$secs" ML-DSA-65 ecdsap256 2>/dev/null)
ml_us=$(awk '$1 == "ML-DSA-65" {printf "%.2f", 1e6 / $6}' <<<"$speed")
ec_us=$(awk '/nistp256/ {printf "%.2f", 1e6 / $7}' <<<"$speed")
echo "   openssl speed: ML-DSA-65 $ml_us us/sign, P-256 $ec_us us/sign"
start_keyserver "$work/ks.json" --threads 1 --access-log "$work/access.log"
taskset -pc 0 "$ks_pid" >/dev/null
# in_keyserver_p50 FROM_LINE: the median time the keyserver spent on the requests logged after
# line FROM_LINE (read to reply queued, signature included), in us.
in_keyserver_p50() {
    tail -n +"$(($1 + 1))" "$work/access.log" | sed -nE 's/.*"latency_us":([0-9]+).*/\1/p' | sort -n |
        awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
for n in 1 32; do
    mark=$(wc -l < "$work/access.log")
    run_bench mldsa65 "$n"
    [[ $n == 1 ]] && { ml_p50=$(calc "$(field p50 "$json") * 1000" 0); ml_in=$(in_keyserver_p50 "$mark"); }
    printf '   ML-DSA-65, %2d in flight: %6.0f ops/s, keyserver %6.1f us CPU/op, latency ms p50 %s p99 %s\n' \
        "$n" "$(field ops_per_second "$json")" "$ks_us" "$(field p50 "$json")" "$(field p99 "$json")"
    limit=1.25; [[ $n == 1 ]] && limit=1.6
    verdict "keyserver CPU per ML-DSA-65 sign, $n in flight / openssl speed" "$(calc "$ks_us / $ml_us")" "$limit" "($ks_us vs $ml_us us)"
done

echo
echo "2. what the 3,309-byte signature costs on the wire (1 in flight, p50)"
mark=$(wc -l < "$work/access.log")
run_bench p256 1
ec_p50=$(calc "$(field p50 "$json") * 1000" 0)
ec_in=$(in_keyserver_p50 "$mark")
# Round trip minus the time inside the keyserver (its access log's latency_us, the signature
# included) is what the client, TLS and loopback cost: ML-DSA-65's reply frame is 3.3 KiB.
ml_wire=$((ml_p50 - ml_in)); ec_wire=$((ec_p50 - ec_in))
echo "   round trip p50 ML-DSA-65 $ml_p50 us ($ml_in us in the keyserver), P-256 $ec_p50 us ($ec_in us in the keyserver)"
echo "   outside the keyserver: ML-DSA-65 $ml_wire us, P-256 $ec_wire us: the 3,309-byte signature adds $((ml_wire - ec_wire)) us"
verdict "ML-DSA-65 round trip outside the keyserver / P-256's" "$(calc "$ml_wire / $ec_wire")" 1.5 "($ml_wire vs $ec_wire us)"

echo
echo "3. nginx CPU per TLS 1.3 handshake with an ML-DSA-65 certificate"
tool() { OPENSSL_CONF=$work/openssl.cnf build/tools/keyless-tool "$@"; }
tool stub "keyless:$ks/mldsa65" -o "$work/mldsa65.stub.pem" 2>/dev/null
nginx_handshakes "$pki/keys/mldsa65.pem" "$pki/certs/mldsa65.crt" /dev/null
local_us=$ng_us; local_hs=$hs
nginx_handshakes "$work/mldsa65.stub.pem" "$pki/certs/mldsa65.crt" "$work/openssl.cnf"
printf '   nginx ML-DSA-65 local key: %5d handshakes, worker %4s us CPU/hs;  keyless: %5d handshakes, worker %4s us CPU/hs + keyserver %s us\n' \
    "$local_hs" "$local_us" "$hs" "$ng_us" "$ks_hs_us"
verdict "nginx worker CPU per ML-DSA-65 handshake, keyless / local key" "$(calc "$ng_us / $local_us")" 1.0 "($ng_us vs $local_us us)"

echo
echo "summary ($(date -u +%Y-%m-%d), $cores cores, ${secs}s per measurement):"
printf '  %s\n' "${results[@]}"
