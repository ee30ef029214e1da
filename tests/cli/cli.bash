# tests/cli/cli.bash - what the sessgatectl suites share.
#
#   load ../helpers/common
#   load cli
#
# Every suite gets a fresh store per test ($STORE) and calls the tool
# through ctl, which goes through the `sessgatectl` helper function so
# that `make valgrind` (SG_VALGRIND=1) runs every invocation under
# valgrind.

setup() {
  STORE=$(make_store)
}

teardown() {
  stop_all
}

# ctl ARGS...: sessgatectl on this test's store.
ctl() { sessgatectl --store "$STORE" "$@"; }

UUID_RE='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'

# jfield PATH: read one JSON value from stdin and print the field at PATH
# ("data.cart"): strings bare, null/objects/arrays as compact JSON.
jfield() {
  "$SG_PYTHON" -c '
import json, sys
v = json.loads(sys.stdin.read())
for k in sys.argv[1].split("."):
    v = v[k]
print(v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), sort_keys=True, ensure_ascii=False))
' "$1"
}

# assert_error_line REGEX: after `run --separate-stderr`, stderr is
# exactly one line "sessgatectl: ..." matching REGEX.
assert_error_line() {
  [ "${#stderr_lines[@]}" -eq 1 ] ||
    fail "expected one stderr line, got ${#stderr_lines[@]}: $stderr"
  [[ "$stderr" == "sessgatectl: "* ]] || fail "stderr lacks the prefix: $stderr"
  [[ "$stderr" =~ $1 ]] || fail "stderr does not match /$1/: $stderr"
}

# store_re: $STORE as an extended regular expression matching itself
# (a redis+unix: URI holds '?' and '.').
store_re() { sed 's/[][\\.*^$?+(){}|]/\\&/g' <<<"$STORE"; }

# EXPIRED: how get words an expired session, as a regex.  GDBM keeps the
# record until purge and says "expired"; Redis deletes it at the end of
# its life (PEXPIREAT), after which it is "not found" (or still "expired"
# if Redis's clock is a little behind ours).  Both are exit 1.
if on_redis; then EXPIRED='(expired|not found)'; else EXPIRED=expired; fi

# now_ms: monotonic-enough wall time in milliseconds.
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# valgrind makes every invocation ~20x slower; time limits scale with it.
slow() { [ "${SG_VALGRIND:-0}" = 1 ]; }
