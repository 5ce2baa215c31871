#!/usr/bin/env bash
# Fails when an #include in keyserver/ runs against its layers. A folder is a layer; a file may
# include its own layer's headers and those of the layers below it, never one above:
#   keyserver/ (the program: main, app, service)
#     > net/ > observe/ > config/ > ops/ > keys/pkcs11/ > keys/ > common/ (its own include path)
# Headers are included by their path from keyserver/ ("ops/dispatch.hpp"), so the text of the
# include names the layer; a bare name of a keyserver header ("dispatch.hpp") is refused too.
set -euo pipefail
cd "$(dirname "$0")/.."

rank_of() { # PATH relative to keyserver/ -> its layer's rank (higher may include lower)
    case $1 in
    keys/pkcs11/*) echo 2 ;;
    keys/*) echo 1 ;;
    ops/*) echo 3 ;;
    config/*) echo 4 ;;
    observe/*) echo 5 ;;
    net/*) echo 6 ;;
    */*) echo "unknown" ;;
    *) echo 7 ;; # the program, at the top of keyserver/
    esac
}

bad=0 checked=0
while IFS= read -r file; do
    rel=${file#keyserver/}
    from=$(rank_of "$rel")
    [[ $from == unknown ]] && { echo "check-layers: $file is in a folder that is no layer (add it here)"; bad=1; continue; }
    while IFS=: read -r line text; do
        target=$(sed -E 's/^[[:space:]]*#include "([^"]+)".*/\1/' <<<"$text")
        checked=$((checked + 1))
        if [[ -f keyserver/$target ]]; then
            to=$(rank_of "$target")
            if [[ $to == unknown || $to -gt $from ]]; then
                echo "check-layers: $file:$line includes $target, a layer above its own"
                bad=1
            fi
        elif [[ -n $(find keyserver -name "$(basename "$target")" -print -quit) && $target != */* ]]; then
            echo "check-layers: $file:$line includes \"$target\" by bare name; write its path from keyserver/"
            bad=1
        fi
    done < <(grep -n '^[[:space:]]*#include "' "$file" || true)
done < <(find keyserver -name '*.cpp' -o -name '*.hpp' | sort)

((bad == 0)) || exit 1
echo "check-layers: $checked includes in keyserver/ run one way"
