#!/usr/bin/env bats
# unit.bats - runs every C unit test program (tests/unit/test_*), one
# @test each, and checks the shared library's exported symbols.  Under SG_VALGRIND=1 each program
# runs under valgrind and any memory error or definite leak fails it.

load ../helpers/common

run_unit() {
  local prog="$SG_BUILDDIR/tests/unit/$1"
  [ -x "$prog" ] || fail "$prog is not built (make unit)"
  mkdir -p "$BATS_TEST_TMPDIR/scratch"
  run "${sg_valgrind[@]}" "$prog" "$BATS_TEST_TMPDIR/scratch"
  echo "$output" | grep -E '^(not ok|#)' || true
  [ "$status" -eq 0 ] || fail "$1 exited $status"
  refute_output --partial 'not ok'
}

@test "test_store: the store API passes its unit tests" {
  run_unit test_store
}

@test "test_allocfail: a failed allocation at any point of any operation is an error, not a crash" {
  run_unit test_allocfail
}

@test "test_cgi_apply: a CGI program's session directives apply all or nothing against a real store" {
  run_unit test_cgi_apply
}

@test "test_cgi_reply: the CGI reply header parser passes its unit tests" {
  run_unit test_cgi_reply
}

@test "test_clock: expiry holds when the clock jumps back and forward" {
  run_unit test_clock
}

@test "test_cookie: the gateway's cookie parser passes its unit tests" {
  run_unit test_cookie
}

@test "test_depth: the nesting limit holds on every write path" {
  run_unit test_depth
}

@test "test_fcgi_reader: the gateway reads FastCGI records by their lengths" {
  run_unit test_fcgi_reader
}

@test "test_inject: what the gateway injects and emits passes its unit tests" {
  run_unit test_inject
}

@test "test_log: the gateway's log lines pass their unit tests" {
  run_unit test_log
}

@test "test_nowait: a get, create, rotate or flash pop with its NOWAIT flag never waits for the store's lock" {
  run_unit test_nowait
}

@test "test_memo: a get with SG_GET_MEMO reads its kept copy while nothing was written" {
  run_unit test_memo
}

@test "test_walk: a GDBM walk sees every session that exists throughout it, whatever is written meanwhile" {
  run_unit test_walk
}

@test "test_privsep: the user/group parser and the socket hand-over check pass" {
  run_unit test_privsep
}

@test "test_record: the stored record format, old-format reads and their conversion" {
  run_unit test_record
}

@test "test_redis: the Redis backend's URI checks pass without a server" {
  run_unit test_redis
}

@test "test_set_cookie: the gateway's Set-Cookie matches the table sessgate.wsgi is tested on" {
  run_unit test_set_cookie
}

@test "test_csrf_rule: the gateway's --csrf decides the table sessgate.wsgi is tested on" {
  run_unit test_csrf_rule
}

# One @test per program so that a failure names it; this one catches a new
# program that has no @test above (it would never run).
@test "every C unit test program has its own @test in unit.bats" {
  local t name missing=()
  for t in "$SG_SRCDIR"/tests/unit/test_*.c; do
    name=$(basename "$t" .c)
    grep -q "^  run_unit $name\$" "$BATS_TEST_FILENAME" || missing+=("$name")
  done
  [ ${#missing[@]} -eq 0 ] || fail "no @test runs: ${missing[*]}"
}

@test "libsessgate.so exports sg_* symbols only" {
  run nm -D --defined-only "$SG_BUILDDIR/libcore/libsessgate.so"
  assert_success
  local bad
  bad=$(echo "$output" | sed 's/@.*//' | awk '$2 ~ /^[TDBRVW]$/ && $3 !~ /^sg_/ {print $3}')
  [ -z "$bad" ] || fail "exported symbols outside sg_*: $bad"
  echo "$output" | grep -q ' T sg_store_open@' || fail "sg_store_open is not exported"
}

@test "libsessgate.so has a versioned soname" {
  run objdump -p "$SG_BUILDDIR/libcore/libsessgate.so"
  assert_output --regexp 'SONAME +libsessgate\.so\.0'
}

@test "sessgate.h compiles alone as C and C++ with no warnings" {
  printf '#include "sessgate.h"\nint main(void){sg_options o; sg_options_init(&o); return o.max_data == 0;}\n' > "$BATS_TEST_TMPDIR/h.c"
  run cc -std=c11 -Wall -Wextra -Werror -I"$SG_SRCDIR/libcore" -c -o "$BATS_TEST_TMPDIR/h.o" "$BATS_TEST_TMPDIR/h.c"
  assert_success
  if command -v g++ >/dev/null; then
    run g++ -Wall -Wextra -Werror -x c++ -I"$SG_SRCDIR/libcore" -c -o "$BATS_TEST_TMPDIR/h2.o" "$BATS_TEST_TMPDIR/h.c"
    assert_success
  fi
}

@test "a program links against the shared library through pkg-config data" {
  printf '#include <sessgate.h>\n#include <string.h>\nint main(void){return strcmp(sg_version(), SG_VERSION_STRING) != 0;}\n' > "$BATS_TEST_TMPDIR/v.c"
  # A sanitized library needs its runtime in the program that links it.
  local san=()
  [ -z "${SG_SANITIZE:-}" ] || san=(-fsanitize="$SG_SANITIZE")
  run cc "${san[@]}" -I"$SG_SRCDIR/libcore" -o "$BATS_TEST_TMPDIR/v" "$BATS_TEST_TMPDIR/v.c" \
      -L"$SG_BUILDDIR/libcore" -lsessgate -Wl,-rpath,"$SG_BUILDDIR/libcore"
  assert_success
  run "$BATS_TEST_TMPDIR/v"
  assert_success
}
