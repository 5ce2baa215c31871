#!/usr/bin/env bash
# No regression between two builds, measured in one run on this machine: the keyserver's CPU per
# P-256 signature at 1 and 32 in flight, and the client library's CPU per remote operation, for
# this tree's build and for the build tree KEYLESS_BENCH_BUILD names (say, the previous commit's:
# `git worktree add /tmp/base HEAD~1 && cmake -S /tmp/base -B /tmp/base/build
# -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF && cmake --build /tmp/base/build`). Each build
# runs its own keyserver, keyless.so and keyless-tool; the builds take turns round by round, so a
# machine that drifts during the run drifts for both. Prints the median of ROUNDS rounds for each,
# and this build ÷ the other with "meets" when at most 1.10 (this VM's run-to-run noise). The
# round-trip p50 is what each build's keyless-tool reports: from 58d1fdf on, at one in flight, as
# the caller sees it (until it has the result); before, until the I/O thread completed the call,
# which leaves out the caller's own wake-up. Time per call (1 / calls per second) compares both.
# Usage: KEYLESS_BENCH_BUILD=DIR scripts/bench-regression.sh [SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3}
rounds=${2:-5}
base=${KEYLESS_BENCH_BUILD:?set KEYLESS_BENCH_BUILD to the build tree to compare with}
[[ -x $base/keyserver/keyserver && -x $base/tools/keyless-tool && -f $base/provider/keyless.so ]] ||
    { echo "bench-regression: $base has no keyserver, keyless-tool and keyless.so" >&2; exit 2; }
base=$(realpath "$base")
unset KEYLESS_BENCH_BUILD # setup builds this tree's build
source scripts/lib.sh
setup bench-regression
tests/gen-pki.sh "$work/pki" >/dev/null
pki=$work/pki
echo '{"keys": {"p256": {"allow": ["sign-tls"]}}}' > "$work/ks.json"
echo "machine: $cores cores, $(openssl version), ${secs}s per measurement, $rounds rounds; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "this build: build ($(git rev-parse --short HEAD)); the other: $base"

declare -A samples # "<build> <measure>" -> space-separated values
measure_build() { # TAG DIR
    local tag=$1 dir=$2
    KEYLESS_BENCH_BUILD=$dir write_openssl_conf "$work/openssl-$tag.cnf"
    KEYLESS_BENCH_BUILD=$dir start_keyserver "$work/ks.json" --threads 1
    taskset -pc 0 "$ks_pid" >/dev/null
    bench_tool=$dir/tools/keyless-tool bench_conf=$work/openssl-$tag.cnf
    for n in 1 32; do
        run_bench p256 "$n"
        samples["$tag ks$n"]+="$ks_us "
        samples["$tag client$n"]+="$(calc "$(field client_cpu_us_per_op "$json")" 1) "
        samples["$tag p50_$n"]+="$(calc "$(field p50 "$json") * 1000" 1) "
        samples["$tag call_$n"]+="$(calc "1e6 * $n / $(field ops_per_second "$json")" 1) "
    done
    kill "$ks_pid"; wait "$ks_pid" 2>/dev/null || true
}
for round in $(seq "$rounds"); do
    # Alternate which build goes first, so neither always runs on a warmer machine.
    if ((round % 2)); then measure_build new build; measure_build old "$base"
    else measure_build old "$base"; measure_build new build; fi
    echo "   round $round/$rounds done"
done
echo
printf '   %-48s %22s %22s %7s\n' "median (min-max) of $rounds" "this build" "the other" "ratio"
for m in ks1 ks32 client1 client32 call_1 p50_1 p50_32; do
    case $m in
    ks1) name="keyserver CPU us per P-256 sign, 1 in flight" ;;
    ks32) name="keyserver CPU us per P-256 sign, 32 in flight" ;;
    client1) name="client CPU us per remote op, 1 in flight" ;;
    client32) name="client CPU us per remote op, 32 in flight" ;;
    call_1) name="us per call, 1 in flight (1 / calls per second)" ;;
    p50_1) name="round trip p50 us, 1 in flight" ;;
    p50_32) name="round trip p50 us, 32 in flight" ;;
    esac
    new=$(median "${samples[new $m]}") old=$(median "${samples[old $m]}")
    printf '   %-48s %8s (%11s) %8s (%11s) %7s\n' "$name" "$new" "$(spread "${samples[new $m]}")" \
        "$old" "$(spread "${samples[old $m]}")" "$(calc "$new / $old")"
    [[ $m == p50_* || $m == call_* ]] || verdict "no regression: $name, this ÷ other" "$(calc "$new / $old")" 1.10 ""
done
echo
printf '%s\n' "${results[@]}"
