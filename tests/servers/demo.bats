#!/usr/bin/env bats
# tests/servers/demo.bats - `make demo` works: examples/demo --smoke starts
# the nginx demo, walks through login, counter, auth_request and logout with
# curl, and stops everything it started.
load ../helpers/common

@test "examples/demo --smoke runs the walk-through and leaves nothing running" {
  require_tool nginx fcgiwrap curl
  [ -x "$SG_GATEWAY" ] || skip "gateway/sessgate is not built"
  export SESSGATE_DEMO_VAR="$BATS_TEST_TMPDIR/var"
  run -0 timeout 120 "$SG_SRCDIR/examples/demo" --smoke
  assert_output --partial "demo: smoke test passed"
  assert_output --partial "/cgi/counter.sh"
  [ -s "$SESSGATE_DEMO_VAR/sessions.db" ]
  # every process it started is gone
  [ -s "$SESSGATE_DEMO_VAR/run/pids.all" ]
  local pid name
  while read -r pid name; do
    if kill -0 "$pid" 2>/dev/null; then fail "$name (pid $pid) still running"; fi
  done < "$SESSGATE_DEMO_VAR/run/pids.all"
}
