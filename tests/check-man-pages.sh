#!/usr/bin/env bash
# The man pages and --help agree: every option keyserver --help and keyless-tool --help list is
# described in keyserver(8) / keyless-tool(1) and the other way round; every openssl.cnf setting
# and environment variable the provider reads (provider/client/settings.cpp) is in
# keyless-provider(7) and in the shipped openssl-conf/keyless.cnf.
# Usage: check-man-pages.sh SOURCE_DIR KEYSERVER KEYLESS_TOOL
set -euo pipefail
src=$1 keyserver=$2 tool=$3
status=0
# compare WHAT LEFT-NAME LEFT RIGHT-NAME RIGHT: one option per line each
compare() {
    local missing
    missing=$(comm -23 <(sort -u <<<"$3") <(sort -u <<<"$5"))
    [[ -z $missing ]] || { echo "$1: in $2 but not in $4: $missing" | tr '\n' ' '; echo; status=1; }
    missing=$(comm -13 <(sort -u <<<"$3") <(sort -u <<<"$5"))
    [[ -z $missing ]] || { echo "$1: in $4 but not in $2: $missing" | tr '\n' ' '; echo; status=1; }
}
help_options() { sed -nE 's/^ {2}(--?[a-z][a-z0-9-]*).*/\1/p'; }
man_options() { sed -nE 's/^\*(--?[a-z][a-z0-9-]*)\*.*/\1/p' "$1"; }
compare keyserver "keyserver --help" "$("$keyserver" --help | help_options)" \
    "keyserver.8" "$(man_options "$src/man/keyserver.8.scd")"
compare keyless-tool "keyless-tool --help" "$("$tool" --help | help_options)" \
    "keyless-tool.1" "$(man_options "$src/man/keyless-tool.1.scd")"
tool_commands=$("$tool" --help | sed -nE 's/^ {2}([a-z]+) URI .*/\1/p')
man_commands=$(sed -nE 's/^\*([a-z]+)\* _URI_$/\1/p' "$src/man/keyless-tool.1.scd")
compare keyless-tool "keyless-tool --help (commands)" "$tool_commands" "keyless-tool.1" "$man_commands"
settings=$(sed -nE 's/.*src\.[a-z]+\("([a-z_]+)", "(KEYLESS_[A-Z_]+)".*/\1 \2/p' \
    "$src/provider/client/settings.cpp")
[[ -n $settings ]] || { echo "no provider settings found in settings.cpp"; exit 1; }
while read -r name env; do
    grep -q "^\*$name\* ($env)$" "$src/man/keyless-provider.7.scd" ||
        { echo "keyless-provider.7 does not describe $name ($env)"; status=1; }
    grep -qE "^#? ?$name = " "$src/openssl-conf/keyless.cnf" ||
        { echo "openssl-conf/keyless.cnf does not show $name"; status=1; }
    grep -q "$env" "$src/openssl-conf/keyless.cnf" ||
        { echo "openssl-conf/keyless.cnf does not name $env"; status=1; }
done <<<"$settings"
[[ $status -eq 0 ]] && echo "man pages, --help and keyless.cnf agree"
exit $status
