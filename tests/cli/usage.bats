#!/usr/bin/env bats
# sessgatectl's command line itself: help, version, unknown words, the
# store requirement, number parsing, and the man page kept in step with
# --help.
# backends: gdbm redis
load ../helpers/common
load cli

# bats test_tags=no-store
@test "--help lists every command and option and exits 0 without a store" {
  run -0 --separate-stderr sessgatectl --help
  for c in create get set delete rotate list count purge stats export import check compact checkpoint; do
    assert_line --regexp "^  $c( |\$)"
  done
  for o in --store --lock-timeout --idle-timeout --max-age --touch-interval \
           --max-per-user --max-data --sync --group --help --version; do
    assert_output --partial -- "$o"
  done
  assert_output --partial "Exit status: 0 done, 1 not found or expired, 2 usage error, 3 store error"
  [ -z "$stderr" ]
}

# bats test_tags=no-store
@test "-h is --help" {
  run -0 sessgatectl -h
  assert_line --partial "Usage: sessgatectl [OPTIONS] COMMAND [ARGS]"
}

# bats test_tags=no-store
@test "--version prints the library version" {
  run -0 sessgatectl --version
  assert_output --regexp '^sessgatectl [0-9]+\.[0-9]+\.[0-9]+$'
}

# bats test_tags=no-store
@test "COMMAND --help describes each command, exit 0, no store needed" {
  for c in create get set delete rotate list count purge stats export import check compact checkpoint; do
    run -0 --separate-stderr sessgatectl "$c" --help
    assert_line --index 0 --regexp "^Usage: sessgatectl \[OPTIONS\] $c( |\$)"
    [ -z "$stderr" ]
  done
}

# bats test_tags=no-store
@test "no command is a usage error" {
  run -2 --separate-stderr sessgatectl --store "$STORE"
  assert_error_line 'no command given \(see sessgatectl --help\)'
  [ -z "$output" ]
}

# bats test_tags=no-store
@test "an unknown command is a usage error naming it" {
  run -2 --separate-stderr ctl frobnicate
  assert_error_line "unknown command 'frobnicate'"
}

# bats test_tags=no-store
@test "a hostile command name is shown escaped, on one line" {
  run -2 --separate-stderr ctl $'evil\ncmd\e[31m'
  assert_error_line "unknown command 'evil\\\\x0acmd\\\\x1b\\[31m'"
}

# bats test_tags=no-store
@test "unknown global options, short or long, are usage errors" {
  run -2 --separate-stderr sessgatectl --bogus count
  assert_error_line 'unknown option --bogus'
  run -2 --separate-stderr sessgatectl -x count
  assert_error_line 'unknown option -x'
}

# bats test_tags=no-store
@test "an unknown command option is a usage error naming the command" {
  run -2 --separate-stderr ctl count --bogus
  assert_error_line 'count: unknown option --bogus \(see sessgatectl count --help\)'
}

# bats test_tags=no-store
@test "an option without its value is a usage error" {
  run -2 --separate-stderr sessgatectl --store
  assert_error_line 'option --store needs a value'
  run -2 --separate-stderr ctl create --user
  assert_error_line 'create: option --user needs a value'
}

# bats test_tags=no-store
@test "extra arguments are usage errors" {
  run -2 --separate-stderr ctl count extra
  assert_error_line 'count: takes no arguments'
  run -2 --separate-stderr ctl purge extra
  assert_error_line 'purge: takes no arguments'
}

# bats test_tags=no-store
@test "without --store or SESSGATE_STORE a command says how to name the store" {
  run -2 --separate-stderr sessgatectl count
  assert_error_line 'no store given: pass --store PATH or set SESSGATE_STORE'
}

@test "SESSGATE_STORE names the store when --store is absent" {
  id=$(ctl create --user env)
  SESSGATE_STORE="$STORE" run -0 sessgatectl get "$id"
  assert_output --partial '"user":"env"'
}

@test "--store wins over SESSGATE_STORE" {
  other=$(make_store other)
  sessgatectl --store "$other" create >/dev/null
  id=$(ctl create)
  SESSGATE_STORE="$other" run -0 sessgatectl --store "$STORE" get "$id"
  SESSGATE_STORE="$other" run -1 sessgatectl get "$id"
}

# bats test_tags=gdbm-only
@test "the gdbm: prefix names the same store" {
  id=$(ctl create --user pfx)
  run -0 sessgatectl --store "gdbm:$STORE" get "$id"
  assert_output --partial '"user":"pfx"'
}

# bats test_tags=no-store
@test "global numbers must be whole numbers in range" {
  for bad in abc 1h 12abc '' ' 5' +5 -1 0 99999999999999999999999; do
    run -2 --separate-stderr ctl --lock-timeout "$bad" count
    assert_error_line "--lock-timeout: '.*' is not a whole number from 1 to 3600000"
  done
  run -2 --separate-stderr ctl --idle-timeout 0 count
  assert_error_line '--idle-timeout: .0. is not a whole number'
  run -2 --separate-stderr ctl --max-age x count
  assert_error_line '--max-age: .x. is not a whole number'
  run -2 --separate-stderr ctl --touch-interval -3 count
  assert_error_line '--touch-interval: .-3. is not a whole number'
  run -2 --separate-stderr ctl --max-per-user -1 count
  assert_error_line '--max-per-user: .-1. is not a whole number from 0 to'
  run -2 --separate-stderr ctl --max-data 1 count
  assert_error_line '--max-data: .1. is not a whole number from 2 to 16777216'
}

# bats test_tags=gdbm-only
@test "a read-only command on a missing store fails with exit 3 and creates nothing" {
  for c in list count stats export; do
    run -3 --separate-stderr ctl "$c"
    assert_error_line "store .*sessions\\.db does not exist"
  done
  run -3 --separate-stderr ctl get 00000000-0000-0000-0000-000000000000
  assert_error_line 'does not exist'
  [ ! -e "$STORE" ] && [ ! -e "$STORE.lock" ]
}

# bats test_tags=no-store
@test "a store in a directory that does not exist is a store error naming it" {
  run -3 --separate-stderr sessgatectl --store "$BATS_TEST_TMPDIR/no/such/dir/s.db" create
  assert_error_line 'no/such/dir/s\.db'
}

@test "output that cannot be written is exit 3, not a silent success" {
  [ -w /dev/full ] || skip "no /dev/full"
  ctl create >/dev/null
  run -3 --separate-stderr export_to_full
  assert_error_line 'cannot write to standard output: No space left on device'
}

export_to_full() { ctl export > /dev/full; }

# The man page and --help must describe the same commands and options.
help_words() {
  sessgatectl --help | grep -oE -- '--[a-z][a-z-]*' | sort -u
  sessgatectl --help | sed -n '/^Commands:/,/^$/p' | grep -oE '^  [a-z]+' | sed 's/^  //' | sort -u
}
man_words() {
  local man="$SG_SRCDIR/docs/sessgatectl.1"
  sed 's/\\-/-/g; s/\\f[BIRP]//g' "$man" | grep -v '^\.\\"' |
    grep -oE -- '--[a-z][a-z-]*' | sort -u
  # commands: the .TP tags of the COMMANDS section
  sed -n '/^\.SH COMMANDS/,/^\.SH /p' "$man" | sed 's/\\f[BIRP]//g' |
    awk 'prev == ".TP" { sub(/^\.B /, ""); print $1 } { prev = $0 }' | sort -u
}

# bats test_tags=no-store
@test "every command and option in --help is in the man page" {
  help=$(help_words | sort -u)
  man=$(man_words | sort -u)
  missing=$(comm -23 <(echo "$help") <(echo "$man"))
  [ -z "$missing" ] || fail "in --help but not in docs/sessgatectl.1: $missing"
}

# bats test_tags=no-store
@test "every command and option in the man page is in --help" {
  help=$(help_words | sort -u)
  man=$(man_words | sort -u)
  extra=$(comm -13 <(echo "$help") <(echo "$man"))
  [ -z "$extra" ] || fail "in docs/sessgatectl.1 but not in --help: $extra"
}

# bats test_tags=no-store
@test "the man page formats without warnings" {
  require_tool groff
  run -0 --separate-stderr groff -man -Tutf8 -ww -z "$SG_SRCDIR/docs/sessgatectl.1"
  [ -z "$stderr" ] || fail "groff warnings: $stderr"
}
