# shellcheck shell=bash
# Minimal Debian roots for the platform matrix (scripts/platforms.sh) and per-release packages
# (scripts/package.sh --release). Sourced, bash only, needs root.
#
# A root is made once with debootstrap --variant=minbase and kept under $roots_cache (outside the
# clone: CI starts from a fresh clone each time), then a copy of it gets the packages of a
# platform and is kept too. Both are made again when older than a week or, for the packaged root,
# when what installs its packages changed. A run never touches a cached root: it works in an
# overlay on top of it (proc, dev and tmp mounted in the overlay, unmounted by the trap), with a
# copy of the source tree in /src and one ccache directory shared by every root.
roots_cache=${KEYLESS_ROOTS_CACHE:-/var/cache/keyless-platforms}
roots_mirror=${KEYLESS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
roots_max_age_days=7

# The packages of a root that builds and tests everything (platforms.sh, package.sh --release).
roots_setup_full='scripts/install-deps.sh --interop'

roots_log() { printf '%s\n' "platforms: $*" >&2; }

# roots_fresh PATH: true when PATH/.keyless-stamp exists, is younger than a week and (with a
# second argument) holds that text.
roots_fresh() {
    local stamp=$1/.keyless-stamp
    [[ -f $stamp ]] || return 1
    [[ -z $(find "$stamp" -mtime +"$roots_max_age_days") ]] || return 1
    [[ $# -lt 2 || $(cat "$stamp") == "$2" ]]
}

# roots_remove PATH: deletes a root that nothing is mounted in, or on (an overlay's lowerdir),
# and never crosses a mount.
roots_remove() {
    [[ -e $1 ]] || return 0
    if grep -qF "$(realpath "$1")" /proc/mounts; then
        roots_log "not removing $1: it or something inside it is still mounted"; return 1
    fi
    rm -rf --one-file-system "$1"
}

# roots_base SUITE: makes $roots_cache/SUITE.base, a pristine minbase root, when missing or old.
# (These functions set globals instead of printing paths: a $(...) subshell would lose the list
# of mounts that the trap must undo.)
roots_base() {
    local suite=$1 dir=$roots_cache/$1.base
    if ! roots_fresh "$dir"; then
        roots_log "debootstrap --variant=minbase $suite (about a minute)"
        mkdir -p "$roots_cache"
        roots_remove "$dir.tmp"; roots_remove "$dir"
        debootstrap --variant=minbase "$suite" "$dir.tmp" "$roots_mirror" > "$roots_cache/$suite.debootstrap.log" 2>&1 ||
            { tail -20 "$roots_cache/$suite.debootstrap.log" >&2; roots_log "debootstrap $suite failed"; return 1; }
        # The mirror's sid and experimental Release files may be past their Valid-Until.
        echo 'Acquire::Check-Valid-Until "false";' > "$dir.tmp/etc/apt/apt.conf.d/99keyless-valid-until"
        date -u +%FT%TZ > "$dir.tmp/.keyless-stamp"
        mv "$dir.tmp" "$dir"
    fi
}

# Mounts of the root being worked in, for roots_umount (the trap calls it).
roots_mounted=()
roots_mount() { # ROOT: proc, dev and a private /tmp inside ROOT
    local root=$1
    mount -t proc proc "$root/proc" && roots_mounted+=("$root/proc")
    mount --bind /dev "$root/dev" && roots_mounted+=("$root/dev")
    mount -t devpts devpts "$root/dev/pts" -o newinstance,ptmxmode=0666 2>/dev/null && roots_mounted+=("$root/dev/pts")
    mount -t tmpfs tmpfs "$root/tmp" && roots_mounted+=("$root/tmp")
    cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
}
roots_umount() { # everything roots_mount and roots_overlay mounted, innermost first
    local i
    for ((i = ${#roots_mounted[@]} - 1; i >= 0; i--)); do
        umount "${roots_mounted[i]}" 2>/dev/null || umount -l "${roots_mounted[i]}" 2>/dev/null || true
    done
    roots_mounted=()
}

# roots_chroot ROOT COMMAND...: runs COMMAND in ROOT with a clean environment.
roots_chroot() {
    local root=$1; shift
    chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive CCACHE_DIR=/var/cache/ccache \
        "${roots_env[@]}" "$@"
}
roots_env=()

# roots_packaged NAME SUITE SETUP: makes $roots_cache/NAME.root, SUITE's root with the packages that the
# shell text SETUP installs (run inside the root, in /src with the source tree's scripts), made
# when missing, older than a week, or SETUP or scripts/install-deps.sh changed.
roots_packaged() {
    local name=$1 suite=$2 setup=$3 dir=$roots_cache/$1.root base=$roots_cache/$2.base stamp
    stamp=$(printf '%s\n%s' "$setup" "$(cat scripts/install-deps.sh)" | sha256sum | cut -d' ' -f1)
    if ! roots_fresh "$dir" "$stamp"; then
        roots_base "$suite"
        roots_log "$name: installing its packages into a copy of the $suite root"
        roots_remove "$dir.tmp"; roots_remove "$dir"
        cp -a "$base" "$dir.tmp"
        mkdir -p "$dir.tmp/src/scripts"
        cp scripts/install-deps.sh "$dir.tmp/src/scripts/"
        roots_mount "$dir.tmp"
        roots_apt_cache "$dir.tmp" "$suite"
        if ! roots_chroot "$dir.tmp" bash -euo pipefail -c "cd /src; apt-get update -qq; $setup" \
            > "$roots_cache/$name.setup.log" 2>&1; then
            roots_umount
            tail -30 "$roots_cache/$name.setup.log" >&2; roots_log "$name: installing packages failed"; return 1
        fi
        roots_umount
        rm -rf "$dir.tmp/src"
        echo "$stamp" > "$dir.tmp/.keyless-stamp"
        mv "$dir.tmp" "$dir"
    fi
}

# roots_apt_cache ROOT SUITE: SUITE's downloaded packages kept across roots and runs (a fresh
# root installs without downloading again what another run already fetched).
roots_apt_cache() {
    mkdir -p "$roots_cache/apt/$2/partial"
    mount --bind "$roots_cache/apt/$2" "$1/var/cache/apt/archives" && roots_mounted+=("$1/var/cache/apt/archives")
}

# roots_overlay LOWER SUITE: makes a writable overlay on LOWER (the cached root of SUITE stays as
# it was) with proc, dev, tmp, the shared ccache and apt cache and a copy of this source tree in
# /src; sets roots_run_dir and roots_root (the overlay's path). roots_overlay_done unmounts and
# deletes it.
roots_overlay() {
    local lower=$1 suite=$2 merged
    mkdir -p "$roots_cache/run" "$roots_cache/ccache"
    roots_run_dir=$(mktemp -d "$roots_cache/run/$(basename "$lower").XXXXXX")
    mkdir -p "$roots_run_dir"/{upper,work,merged}
    merged=$roots_run_dir/merged
    roots_root=$merged
    mount -t overlay overlay -o "lowerdir=$lower,upperdir=$roots_run_dir/upper,workdir=$roots_run_dir/work" \
        "$merged"
    roots_mounted+=("$merged")
    roots_mount "$merged"
    mkdir -p "$merged/var/cache/ccache"
    mount --bind "$roots_cache/ccache" "$merged/var/cache/ccache" && roots_mounted+=("$merged/var/cache/ccache")
    roots_apt_cache "$merged" "$suite"
    # The tree as it is now (committed or not), without build directories.
    mkdir -p "$merged/src"
    git ls-files -z --cached --others --exclude-standard | tar -cf - --null --ignore-failed-read -T - 2>/dev/null | tar -xf - -C "$merged/src"
}
# roots_leftovers ROOT: ends every process still running in ROOT (its /proc/PID/root) and
# names them; false when there were any (a test that does not stop what it started).
roots_leftovers() {
    local root p found=()
    root=$(realpath "$1")
    for p in /proc/[0-9]*; do
        [[ $(readlink "$p/root" 2>/dev/null) == "$root" ]] || continue
        found+=("${p#/proc/} $(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)")
        kill -KILL "${p#/proc/}" 2>/dev/null || true
    done
    ((${#found[@]} == 0)) && return 0
    roots_log "processes left running in the root (ended now):"
    printf '  %s\n' "${found[@]}" >&2
    return 1
}

roots_overlay_done() {
    roots_umount
    [[ -n ${roots_run_dir:-} ]] && roots_remove "$roots_run_dir"
    roots_run_dir=
}
