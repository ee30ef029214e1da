# tests/helpers/logcheck.bash - the suite-wide check that no gateway log
# line carries a session id (issue 16: an id in a log is a stolen session).
# Sourced by common.bash and servers.bash; needs nothing else.
#
#   sg_log_ids FILE...   print every line holding text shaped like a session
#                        id (8-4-4-4-12 hex digits, either case); exit 1 if any
#   sg_log_keep FILE...  copy the files into $SG_LOG_ARCHIVE (tests/run sets
#                        it) for the final check over the whole run
#
# Why by shape and not by the ids the tests made: the gateway never has a
# reason to log anything id-shaped (it logs a keyed hash, 12 hex digits),
# so any such text is a leak, whichever test or path produced it.
SG_ID_RE='[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}'

sg_log_ids() {
  local f hits found=0
  for f in "$@"; do
    [ -f "$f" ] || continue
    hits=$(grep -aEn "$SG_ID_RE" "$f") || continue
    printf '%s\n' "$hits" | sed "s|^|$f:|"
    found=1
  done
  [ "$found" = 0 ]
}

sg_log_keep() {
  local f
  [ -n "${SG_LOG_ARCHIVE:-}" ] && [ -d "$SG_LOG_ARCHIVE" ] || return 0
  for f in "$@"; do
    [ -s "$f" ] || continue
    cp "$f" "$(mktemp "$SG_LOG_ARCHIVE/$(basename "$f").XXXXXX")" 2>/dev/null || true
  done
}
