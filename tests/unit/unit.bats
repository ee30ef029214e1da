#!/usr/bin/env bats
# unit.bats - runs every C unit test program (tests/unit/test_*) and checks
# the shared library's exported symbols.  Under SG_VALGRIND=1 each program
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

@test "the store API passes its unit tests" {
  run_unit test_store
}

@test "every C unit test program passes" {
  local n=0 t
  for t in "$SG_BUILDDIR"/tests/unit/test_*; do
    [ -x "$t" ] && [ "${t%.*}" = "$t" ] || continue
    [ "$(basename "$t")" = test_store ] && continue   # has its own test above
    n=$((n + 1))
    run_unit "$(basename "$t")"
  done
  echo "# ran $n more unit program(s)" >&3
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
