#!/bin/sh
# test_check_layers.sh: tools/check-layers passes on the real handler/ and fails, naming the include and the rule,
# on temporary trees that each break one rule (TAP).
set -u
top=${top_srcdir:-$(dirname "$0")/../..}
check=$top/tools/check-layers
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }

# a minimal clean tree: one file per layer, each including the layer below it
clean_tree() {
    rm -rf "$tmp/handler"
    for l in common core route ws signaling server; do mkdir -p "$tmp/handler/$l"; done
    printf '#include <stddef.h>\n' >"$tmp/handler/common/sig_common.h"
    printf '#include <string.h>\n#include "common/sig_common.h"\n' >"$tmp/handler/core/sig_registry.h"
    printf '#include "sig_registry.h"\n#include <yajl/yajl_parse.h>\n' >"$tmp/handler/core/sig_registry.c"
    printf '#include <pthread.h>\n#include <h2o.h>\n#include "core/sig_registry.h"\n' >"$tmp/handler/route/sig_router.h"
    printf '#include <uv.h>\n#include "route/sig_router.h"\n' >"$tmp/handler/ws/sig_ws.h"
    printf '#include "ws/sig_ws.h"\n#include "common/sig_common.h"\n' >"$tmp/handler/signaling/sig_signaling.h"
    printf '#include "config.h"\n#include "yoml.h"\n#include "signaling/sig_signaling.h"\n' >"$tmp/handler/server/main.c"
    printf '/* stand-in */\n' >"$tmp/handler/server/yoml.h"
}

# expect_fail NAME FILE LINE TEXT EXPECTED: adds LINE to FILE of a clean tree; the check must exit 1 and print EXPECTED
expect_fail() {
    clean_tree
    mkdir -p "$(dirname "$tmp/handler/$2")"
    printf '%s\n' "$3" >>"$tmp/handler/$2"
    out=$("$check" "$tmp/handler" 2>&1)
    rc=$?
    if [ $rc -eq 1 ] && printf '%s\n' "$out" | grep -qF -- "$4"; then
        ok "$1"
    else
        not_ok "$1"
        echo "# exit $rc, wanted 1 and a line containing: $4"
        printf '%s\n' "$out" | sed 's/^/# /'
    fi
}

if out=$("$check" "$top/handler" 2>&1); then ok "the real handler/ keeps every rule"; else
    not_ok "the real handler/ keeps every rule"; printf '%s\n' "$out" | sed 's/^/# /'; fi

clean_tree
if out=$("$check" "$tmp/handler" 2>&1); then ok "a clean fixture tree passes"; else
    not_ok "a clean fixture tree passes"; printf '%s\n' "$out" | sed 's/^/# /'; fi

expect_fail "core/ including h2o.h fails" core/sig_registry.c '#include <h2o.h>' \
    'handler/core/sig_registry.c:3: #include <h2o.h>: core/ must not include h2o'
expect_fail "core/ including an h2o/ header fails" core/sig_registry.h '#include <h2o/websocket.h>' \
    '#include <h2o/websocket.h>: core/ must not include'
expect_fail "common/ including pthread.h fails" common/sig_common.h '#  include <pthread.h>' \
    'handler/common/sig_common.h:2: #include <pthread.h>: common/ must not include'
expect_fail "core/ including uv.h fails" core/sig_registry.c '#include <uv.h>' '#include <uv.h>: core/ must not'
expect_fail "core/ including a socket header fails" core/sig_registry.c '#include <sys/socket.h>' \
    '#include <sys/socket.h>: core/ must not'
expect_fail "core/ including hiredis fails" core/sig_registry.c '#include <hiredis/async.h>' \
    '#include <hiredis/async.h>: core/ must not'
expect_fail "core/ including ws/ (a higher layer) fails" core/sig_registry.c '#include "ws/sig_ws.h"' \
    'core/ is below ws/ (rule: a layer includes only its own and lower layers'
expect_fail "route/ including signaling/ fails" route/sig_router.h '#include "signaling/sig_signaling.h"' \
    'handler/route/sig_router.h:4: #include "signaling/sig_signaling.h": route/ is below signaling/'
expect_fail "signaling/ including server/ fails" signaling/sig_signaling.h '#include "server/sig_server.h"' \
    'signaling/ is below server/'
expect_fail "a bare include of another folder's header fails" ws/sig_ws.h '#include "sig_router.h"' \
    'a header of route/ by its bare name (rule: include another folder'"'"'s header as "route/sig_router.h")'
expect_fail "a source outside the layer folders fails" sig_stray.c '#include <stdio.h>' \
    'handler/sig_stray.c: a source outside the layer folders'
expect_fail "a folder that is no layer fails" misc/sig_util.c '#include <stdio.h>' \
    'handler/misc/sig_util.c: a source outside the layer folders'

clean_tree
printf '#include <h2o.h>\n' >>"$tmp/handler/core/sig_registry.c"
printf '#include "server/main.h"\n' >>"$tmp/handler/common/sig_common.h"
out=$("$check" "$tmp/handler" 2>&1)
if printf '%s\n' "$out" | grep -q '^check-layers: 2 broken rule(s)'; then ok "every broken rule is counted, not only the first"; else
    not_ok "every broken rule is counted, not only the first"; printf '%s\n' "$out" | sed 's/^/# /'; fi

if "$check" "$tmp/nowhere" >/dev/null 2>&1; then not_ok "a missing directory is a usage error"; else
    [ $? -eq 2 ] && ok "a missing directory is a usage error" || not_ok "a missing directory is a usage error"; fi

echo "1..$n"
[ $failed -eq 0 ]
