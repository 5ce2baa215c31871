#!/usr/bin/env bash
# Tests docs/deploy.md as a new user would follow it: builds the Debian packages, then runs every
# `sh` block of the guide in order, in one shell, on this machine (both hosts on 127.0.0.1),
# against the installed packages; the guide ends with handshakes through nginx that the
# keyserver's access log must show. Then purges the packages and checks what is left.
# Needs root (it installs packages and writes /etc).
# Usage: scripts/test-deploy-guide.sh [--debs DIR]
#   --debs DIR installs the keyless-*.deb files in DIR instead of building them here (how
#   scripts/platforms.sh tests a release's packages on a fresh minimal root of that release)
#
# Where systemd is not running (containers, CI), `systemctl` in the guide is played by
# systemd_standin below: it starts a unit the way its unit file and drop-ins say (User, Group,
# Environment, LimitNOFILE, ExecStartPre, ExecStart), after `systemd-analyze verify` has
# checked the unit. With systemd running, the guide's commands run as written.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
[[ $(id -u) -eq 0 ]] || { echo "test-deploy-guide.sh: needs root" >&2; exit 1; }
debs=
case ${1:-} in
--debs) debs=$(realpath "$2") ;;
"") scripts/install-deps.sh --interop >/dev/null
    scripts/package.sh >/dev/null
    debs=$PWD/build-pkg ;;
*) echo "usage: test-deploy-guide.sh [--debs DIR]" >&2; exit 2 ;;
esac
ls "$debs"/keyless-provider_*.deb "$debs"/keyless-keyserver_*.deb >/dev/null

work=$(mktemp -d /tmp/keyless-guide.XXXXXX)
started=()
# Stops what the guide started and removes what it made (as its "Removing" section tells an
# administrator to), leaving only what the packages installed.
# Only what this run started is ended, by PID: the stand-in's record, or systemd's units.
undo_guide() {
    [[ -f $work/pids ]] && mapfile -t started < "$work/pids"
    [[ -f /run/nginx.pid ]] && started+=("$(cat /run/nginx.pid)")
    for p in "${started[@]}"; do kill "$p" 2>/dev/null || true; done
    if [[ -d /run/systemd/system ]]; then systemctl stop keyless-keyserver nginx 2>/dev/null || true; fi
    for p in "${started[@]}"; do # ended, within 10 s
        for _ in $(seq 200); do [[ -e /proc/$p ]] || break; sleep 0.05; done
    done
    rm -f /etc/nginx/sites-enabled/keyless-www.conf
    rm -rf /etc/nginx/keyless /etc/systemd/system/nginx.service.d/keyless.conf /root/keyless-pki
    rm -f /etc/keyless/keys/www-*.pem /etc/keyless/*.crt /etc/keyless/*.key
}
cleanup() {
    local status=$?
    undo_guide
    dpkg --purge keyless-keyserver keyless-provider >/dev/null 2>&1 || true
    [[ $status -eq 0 ]] || { echo "--- guide output:"; tail -40 "$work/guide.log" 2>/dev/null; }
    rm -rf "$work"
    exit $status
}
trap cleanup EXIT
# A previous run's leftovers would hide a missing step.
dpkg --purge keyless-keyserver keyless-provider >/dev/null 2>&1 || true
cp "$debs"/keyless-*.deb "$work/"

# The guide's shell blocks, with the keyserver's address set to this machine's loopback.
awk '/^```sh$/ { inside = 1; next } /^```$/ { inside = 0 } inside' docs/deploy.md |
    sed 's/^KEYSERVER_IP=10\.0\.0\.5$/KEYSERVER_IP=127.0.0.1/' > "$work/guide.sh"
grep -q '^KEYSERVER_IP=127.0.0.1$' "$work/guide.sh" || { echo "guide: no KEYSERVER_IP line" >&2; exit 1; }

cat > "$work/standin.sh" <<'STANDIN'
# systemd_standin: `systemctl` for the guide where systemd is not PID 1 (see the script's header).
unit_file() { # NAME -> the unit's file
    local n=${1%.service}.service
    for d in /etc/systemd/system /lib/systemd/system; do [[ -f $d/$n ]] && { echo "$d/$n"; return; }; done
    echo "systemctl stand-in: no unit $n" >&2; return 1
}
unit_setting() { # NAME KEY -> every value of KEY in the unit and its drop-ins, one per line
    local n=${1%.service}.service f
    for f in "$(unit_file "$1")" /etc/systemd/system/$n.d/*.conf; do
        if [[ -f $f ]]; then sed -n "s/^$2=//p" "$f"; fi
    done
}
start_unit() {
    local name=${1%.service} user env=() nofile cmd
    systemd-analyze verify "$(unit_file "$name")"
    user=$(unit_setting "$name" User | tail -1)
    nofile=$(unit_setting "$name" LimitNOFILE | tail -1)
    while read -r e; do [[ -n $e ]] && env+=("$e"); done < <(unit_setting "$name" Environment)
    local run=(env "${env[@]}")
    # This sandbox may not allow raising the hard limit that systemd would set: use what it has.
    if [[ -n $nofile && $(ulimit -Hn) != unlimited && $nofile -gt $(ulimit -Hn) ]]; then
        echo "systemctl stand-in: LimitNOFILE=$nofile is above this sandbox's hard limit; using $(ulimit -Hn)" >&2
        nofile=$(ulimit -Hn)
    fi
    [[ -n $nofile ]] && run=(prlimit --nofile="$nofile:$nofile" -- "${run[@]}")
    [[ -n $user ]] && run=(setpriv --reuid="$user" --regid="$user" --init-groups -- "${run[@]}")
    while read -r cmd; do
        [[ -n $cmd ]] && eval "${run[*]@Q} $cmd"
    done < <(unit_setting "$name" ExecStartPre | sed 's/^-//')
    cmd=$(unit_setting "$name" ExecStart | tail -1)
    # exec: the recorded PID is the program itself (prlimit, setpriv and env exec into it)
    eval "exec ${run[*]@Q} $cmd" >> "/tmp/standin-$name.log" 2>&1 &
    echo $! >> "$STANDIN_PIDS"
    # Ready when it listens (keyserver) or has written its pid file (nginx, which forks).
    for _ in $(seq 200); do
        case $name in
        keyless-keyserver) curl -sf http://127.0.0.1:2406/healthz >/dev/null && return 0 ;;
        nginx) [[ -s /run/nginx.pid ]] && return 0 ;;
        *) return 0 ;;
        esac
        sleep 0.05
    done
    echo "systemctl stand-in: $name did not start:" >&2; cat "/tmp/standin-$name.log" >&2; return 1
}
systemctl() { # quiet: only the guide's own commands are traced
    { set +x; } 2>/dev/null
    systemctl_standin "$@"
    set -x
}
systemctl_standin() {
    case $1 in
    daemon-reload) return 0 ;;
    enable) [[ $2 == --now ]] && start_unit "$3"; return 0 ;;
    start) start_unit "$2" ;;
    restart)
        if [[ ${2%.service} == nginx && -s /run/nginx.pid ]]; then kill "$(cat /run/nginx.pid)"; rm -f /run/nginx.pid; fi
        start_unit "$2" ;;
    *) echo "systemctl stand-in: $* is not played" >&2; return 1 ;;
    esac
}
STANDIN

{
    echo 'set -euo pipefail'
    echo "cd '$work'"
    [[ -d /run/systemd/system ]] || echo "STANDIN_PIDS='$work/pids'; source '$work/standin.sh'"
    echo 'set -x'
    cat "$work/guide.sh"
} > "$work/run.sh"
if ! bash "$work/run.sh" > "$work/guide.log" 2>&1; then
    echo "FAILED: a command of docs/deploy.md failed (see the output above the first error)" >&2
    exit 1
fi
cat "$work/guide.log" | grep -E "served by a keyless edge|status: active|^ok:" || true

# What the guide's run proved beyond its own checks.
ks_pid=
if [[ -d /run/systemd/system ]]; then
    ks_pid=$(systemctl show -p MainPID --value keyless-keyserver)
elif [[ -f $work/pids ]]; then
    while read -r p; do [[ $(readlink "/proc/$p/exe" 2>/dev/null) == /usr/sbin/keyserver ]] && ks_pid=$p; done < "$work/pids"
fi
[[ -n $ks_pid ]] || { echo "FAILED: the keyserver is not running" >&2; exit 1; }
[[ $(stat -c %U "/proc/$ks_pid") == keyless ]] || { echo "FAILED: the keyserver does not run as keyless" >&2; exit 1; }
grep -q '"client":"edge-1".*"result":"ok"' /var/log/keyless/access.log
echo "keyserver runs as keyless (pid $ks_pid); $(grep -c '"result":"ok"' /var/log/keyless/access.log) operations in its access log"

# Purge: nothing but the keyless user (Debian policy keeps system users) may remain once the
# files the administrator made are gone.
trap - EXIT
undo_guide
dpkg --purge keyless-keyserver keyless-provider >/dev/null
left=()
for f in /etc/keyless /var/log/keyless /usr/sbin/keyserver /usr/bin/keyless-tool \
    "$(openssl version -m | cut -d'"' -f2)/keyless.so" /lib/systemd/system/keyless-keyserver.service \
    /etc/logrotate.d/keyless-keyserver /usr/share/man/man8/keyserver.8.gz; do
    [[ -e $f ]] && left+=("$f")
done
dpkg -l 'keyless-*' 2>/dev/null | grep -q '^[ir]' && left+=("dpkg still lists a keyless package")
rm -rf "$work"
if ((${#left[@]})); then echo "FAILED: left after purge: ${left[*]}" >&2; exit 1; fi
echo "deploy guide: ok (packages installed, guide followed, handshakes verified, purge clean)"
