# tests/helpers/server_checks.bash - HTTP helpers and shared checks for the
# real-server suites (tests/servers/*.bats).
#
# Every server suite runs the same behaviours (login, counter, logout,
# rotation, strict ids, spoofing, hostile values, big inputs) against its own
# URL layout, so the checks live here once and take the URL paths as
# arguments.  They assert on what the BACKEND printed (whoami.cgi, counter.sh,
# echo_http.py), which is the only honest proof that a forged header did not
# get through.  Load after common and servers:
#   load ../helpers/common; load ../helpers/servers; load ../helpers/server_checks

ID_RE='[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'

# The spoof set: every way a client might try to pass a session identity.
SPOOF=(
  -H "X-Session-Id: forged-xsid"
  -H "X-Session-User: forged-xuser"
  -H "X-Session_User: forged-x-session-underscore-user"
  -H "X-Session-Data: {\"forged\":1}"
  -H "X-Session-New: forged-new"
  -H "X-Session-Data-Truncated: forged-trunc"
  -H "Session-Id: forged-sid"
  -H "Session-User: forged-suser"
  -H "Variable-SESSION_ID: forged-var"
  -H "Variable-Session-User: forged-var-user"
  -H "SESSION_ID: forged-underscore"
  -H "SESSION_USER: forged-underscore-user"
  -H "X_Session_Id: forged-x-underscore"
)

# req URL [CURL ARGS...]: one request; sets STATUS, HDRS (raw header block)
# and BODY.  Bounded by --max-time; never follows redirects.
req() {
  local url=$1 d=$BATS_TEST_TMPDIR
  shift
  STATUS=$(curl -sS --max-time 20 -o "$d/resp.body" -D "$d/resp.hdrs" -w '%{http_code}' \
                "$@" "$url") || STATUS=000
  HDRS=$(tr -d '\r' < "$d/resp.hdrs" 2>/dev/null)
  BODY=$(cat "$d/resp.body" 2>/dev/null)
}

# header NAME: the value(s) of response header NAME in HDRS, one per line.
header() { printf '%s\n' "$HDRS" | sed -n "s/^$1: //Ip"; }

# set_cookie_id: the session id in the response's Set-Cookie (empty if none).
set_cookie_id() { header Set-Cookie | sed -n 's/^sessgate=\([^;]*\).*/\1/p' | head -n 1; }

# body_var NAME: the value the backend printed for NAME (NAME=value lines).
body_var() { printf '%s\n' "$BODY" | sed -n "s/^$1=//p" | head -n 1; }

# new_session [sessgatectl create args]: create a session, print its id.
new_session() { sessgatectl --store "$SRV_STORE" create "$@"; }

# req_session URL [sessgatectl create args]: create a session and request
# URL with its cookie (req); SID is its id.
req_session() {
  local url=$1
  shift
  SID=$(new_session "$@") || fail "sessgatectl create $*"
  req "$(srv_url "$url")" -H "Cookie: sessgate=$SID"
}

# expect_status CODE: fail with the response when STATUS differs.
expect_status() {
  [ "$STATUS" = "$1" ] && return 0
  fail "expected HTTP $1, got $STATUS
--- headers
$HDRS
--- body
$(printf '%s\n' "$BODY" | head -c 2000)"
}

# expect_no_forged: nothing of the spoof set shows in the backend's output.
expect_no_forged() {
  if printf '%s\n' "$BODY" | grep -n -i 'forged'; then
    fail "a forged value reached the backend (lines above)"
  fi
}

# expect_no_leak: the client got none of the gateway's session headers
# (Apache copies a gateway's extra headers to the browser, web-servers.md §4).
expect_no_leak() {
  if printf '%s\n' "$HDRS" | grep -i -e '^x-session-' -e '^variable-'; then
    fail "gateway headers leaked to the client (above)"
  fi
}

# ------------------------------------------------------------------ cgi mode

# chk_cgi_login URL: ?login= answers a fresh session cookie with the right
# attributes, and the next request carries the user.  Prints the id.
chk_cgi_login() {
  req "$(srv_url "$1?login=alice")"
  expect_status 200
  local id
  id=$(set_cookie_id)
  [[ $id =~ ^$ID_RE$ ]] || fail "no session cookie in: $HDRS"
  header Set-Cookie | grep -q "^sessgate=$id; Path=/; HttpOnly; SameSite=Lax" ||
    fail "cookie attributes: $(header Set-Cookie)"
  # The app's X-Session-* reply headers are applied and stripped.
  if printf '%s\n' "$HDRS" | grep -i '^x-session-'; then fail "X-Session-* leaked to the client"; fi
  req "$(srv_url "$1")" -H "Cookie: sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_ID)" = "$id" ] || fail "app saw SESSION_ID=$(body_var SESSION_ID), want $id"
  [ "$(body_var SESSION_USER)" = alice ] || fail "app saw SESSION_USER=$(body_var SESSION_USER)"
  LOGIN_ID=$id
}

# chk_counter URL: three visits count 1, 2, 3 in the session.
chk_counter() {
  local id n
  id=$(new_session)
  for n in 1 2 3; do
    req "$(srv_url "$1")" -H "Cookie: sessgate=$id"
    expect_status 200
    printf '%s\n' "$BODY" | grep -qx "count=$n" || fail "visit $n: $BODY"
    [ "$(body_var SESSION_ID)" = "$id" ] || fail "visit $n: id changed"
  done
  run -0 sessgatectl --store "$SRV_STORE" get "$id"
  assert_output --partial '"n":3'
}

# chk_logout URL: ?logout=1 expires the cookie and the id stops working.
chk_logout() {
  local id
  id=$(new_session --user carol)
  req "$(srv_url "$1?logout=1")" -H "Cookie: sessgate=$id"
  expect_status 200
  header Set-Cookie | grep -q '^sessgate=[^;]*;.*Max-Age=0' || fail "cookie not expired: $HDRS"
  run -1 sessgatectl --store "$SRV_STORE" get "$id"
  req "$(srv_url "$1")" -H "Cookie: sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_ID)" != "$id" ] || fail "the logged-out id still works"
  [ -z "$(body_var SESSION_USER)" ] || fail "still logged in as $(body_var SESSION_USER)"
}

# chk_rotation URL: logging in gives a new id, keeps the data, kills the old id.
chk_rotation() {
  local old new
  old=$(new_session --data '{"n":41}')
  req "$(srv_url "$1?login=bob")" -H "Cookie: sessgate=$old"
  expect_status 200
  new=$(set_cookie_id)
  [[ $new =~ ^$ID_RE$ ]] || fail "no new cookie after login: $HDRS"
  [ "$new" != "$old" ] || fail "login did not rotate the id"
  run -1 sessgatectl --store "$SRV_STORE" get "$old"
  req "$(srv_url "$1")" -H "Cookie: sessgate=$new"
  printf '%s\n' "$BODY" | grep -qx 'count=42' || fail "data lost in rotation: $BODY"
  [ "$(body_var SESSION_USER)" = bob ] || fail "user after rotation: $BODY"
}

# make_expired: in setup_file, create a session with a 1 s lifetime for
# strict_ids (exports SRV_EXPIRED_ID and the time it was made).
make_expired() {
  SRV_EXPIRED_ID=$(new_session --user eve --ttl 1) || return 1
  SRV_EXPIRED_AT=$(date +%s)
  export SRV_EXPIRED_ID SRV_EXPIRED_AT
}

# strict_ids: print "label cookie-value" lines: ids no gateway may adopt.
strict_ids() {
  local expired=${SRV_EXPIRED_ID:-} made=${SRV_EXPIRED_AT:-0}
  if [ -z "$expired" ]; then
    expired=$(new_session --user eve --ttl 1)
    made=$(date +%s)
  fi
  printf 'unknown %s\n' "$(cat /proc/sys/kernel/random/uuid)"
  printf 'malformed %s\n' "NOT-A-VALID-ID"
  printf 'uppercase %s\n' "$(new_session --user eve | tr a-f A-F)"
  printf 'truncated %s\n' "$(new_session --user eve | cut -c1-35)"
  printf 'padded %s\n' "$(new_session --user eve)x"
  # the 1 s session must be past its lifetime: wait (bounded) until it is
  # surely 2 s old (date +%s truncates)
  while [ $(( $(date +%s) - made )) -lt 3 ]; do sleep 0.2; done
  printf 'expired %s\n' "$expired"
}

# chk_strict_cgi URL: forged, malformed, unknown, expired ids are never
# adopted by cgi mode: the app runs without that id (a new one at most).
chk_strict_cgi() {
  local label val
  while read -r label val; do
    req "$(srv_url "$1")" -H "Cookie: sessgate=$val"
    expect_status 200
    [ "$(body_var SESSION_ID)" != "$val" ] || fail "$label id adopted"
    [ -z "$(body_var SESSION_USER)" ] || fail "$label id gave user $(body_var SESSION_USER)"
    [ "$(set_cookie_id)" != "$val" ] || fail "$label id sent back as cookie"
  done < <(strict_ids)
}

# chk_strict_user URL EXPECT: on a location requiring a user, every
# non-adoptable id gets EXPECT (302 or 401), never the backend.
chk_strict_user() {
  local label val
  while read -r label val; do
    req "$(srv_url "$1")" -H "Cookie: sessgate=$val"
    [ "$STATUS" = "$2" ] || fail "$label id: HTTP $STATUS, want $2: $BODY"
    expect_no_leak
    if printf '%s\n' "$BODY" | grep -q '^whoami'; then fail "$label id reached the backend"; fi
  done < <(strict_ids)
}

# chk_auth_session URL: the auth-mode backend sees the stored session.
chk_auth_session() {
  req_session "$1" --user alice --data '{"k":"a b","q":"say \"hi\""}'
  expect_status 200
  printf '%s\n' "$BODY" | grep -q '^whoami' || fail "not the backend: $BODY"
  [ "$(body_var SESSION_ID)" = "$SID" ] || fail "SESSION_ID: $BODY"
  [ "$(body_var SESSION_USER)" = alice ] || fail "SESSION_USER: $BODY"
  [ "$(body_var SESSION_DATA)" = '{"k":"a b","q":"say \"hi\""}' ] || fail "SESSION_DATA: $BODY"
  expect_no_leak
}

# chk_user_reaches URL: a logged-in user's session passes a location that
# requires a user, and the backend sees that user.
chk_user_reaches() {
  req_session "$1" --user alice
  expect_status 200
  [ "$(body_var SESSION_USER)" = alice ] || fail "$BODY"
}

# chk_login_redirect URL LOGIN_PATH: an anonymous session on a location that
# requires a user gets a 302 to LOGIN_PATH with next= the URL as sent
# (path and query, percent-encoding kept), and the backend never runs.
chk_login_redirect() {
  local anon
  anon=$(new_session)
  req "$(srv_url "$1")" -H "Cookie: sessgate=$anon"
  expect_status 302
  expect_login_location "$2" "$1"
  if printf '%s\n' "$BODY" | grep -q '^whoami'; then fail "backend ran"; fi
}

# chk_user_401 PREFIX: a location requiring a user answers 401 (with the
# gateway's WWW-Authenticate) to every id no gateway may adopt and to no
# cookie at all (PREFIX and PREFIX"x"), and lets a logged-in user through.
chk_user_401() {
  chk_strict_user "$1" 401
  req "$(srv_url "${1}x")"
  expect_status 401
  header WWW-Authenticate | grep -q '^SessGate realm="sessgate"' || fail "$HDRS"
  local id
  id=$(new_session --user alice)
  req "$(srv_url "${1}x")" -H "Cookie: sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_USER)" = alice ] || fail "$BODY"
}

# chk_http_headers URL: an HTTP (proxied) backend gets the session as the
# X-Session-Id, -User and -Data request headers.
chk_http_headers() {
  req_session "$1" --user alice --data '{"k":"v"}'
  expect_status 200
  printf '%s\n' "$BODY" | grep -qx "X-Session-Id: $SID" || fail "$BODY"
  printf '%s\n' "$BODY" | grep -qx "X-Session-User: alice" || fail "$BODY"
  printf '%s\n' "$BODY" | grep -qx 'X-Session-Data: {"k":"v"}' || fail "$BODY"
}

# chk_anon_session URL ATTRS: a request without a cookie gets a new
# anonymous session: its cookie is exactly "sessgate=ID" ATTRS and the
# backend sees it as new; the next request with that cookie is the same
# session, no longer new, and gets no second cookie.
chk_anon_session() {
  local id
  req "$(srv_url "$1")"
  expect_status 200
  id=$(set_cookie_id)
  [[ $id =~ ^$ID_RE$ ]] || fail "no cookie: $HDRS"
  header Set-Cookie | grep -qxF "sessgate=$id$2" || fail "cookie attributes: $(header Set-Cookie)"
  [ "$(body_var SESSION_ID)" = "$id" ] && [ "$(body_var SESSION_NEW)" = 1 ] || fail "$BODY"
  req "$(srv_url "$1")" -H "Cookie: sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_ID)" = "$id" ] && [ -z "$(body_var SESSION_NEW)" ] || fail "$BODY"
  [ -z "$(set_cookie_id)" ] || fail "a second cookie for a live session: $HDRS"
}

# chk_anon_strict URL: with anonymous sessions on, a forged, malformed,
# unknown or expired id is never adopted nor sent back: a new session is
# made instead, its cookie sent and the backend told it is new.
chk_anon_strict() {
  local label val id
  while read -r label val; do
    req "$(srv_url "$1")" -H "Cookie: sessgate=$val"
    expect_status 200
    id=$(set_cookie_id)
    [ "$id" != "$val" ] && [ "$(body_var SESSION_ID)" != "$val" ] || fail "$label id adopted"
    [[ $id =~ ^$ID_RE$ ]] || fail "$label: no new session cookie: $HDRS"
    [ "$(body_var SESSION_ID)" = "$id" ] && [ "$(body_var SESSION_NEW)" = 1 ] ||
      fail "$label: $BODY"
  done < <(strict_ids)
}

# chk_auth_none URL: without a cookie the backend gets no session at all.
chk_auth_none() {
  req "$(srv_url "$1")"
  expect_status 200
  printf '%s\n' "$BODY" | grep -q '^whoami' || fail "not the backend: $BODY"
  [ -z "$(body_var SESSION_ID)" ] || fail "a session appeared: $BODY"
  [ -z "$(body_var SESSION_USER)" ] || fail "a user appeared: $BODY"
}

# expect_spoof_harmless [ID]: after a request carrying imitation headers,
# either it was refused (400 from the server's header parser, 403 from the
# gateway, which refuses any header imitating a session header it sees) and
# no backend ran, or it was served and nothing forged reached the backend;
# with ID a served request still carries that real session.  Counts the
# outcomes in SPOOF_SERVED and SPOOF_REFUSED.
expect_spoof_harmless() {
  # (explicit returns: callers run this in a loop under ||, where set -e is off)
  expect_no_forged || return 1
  case $STATUS in
    400|403)
      if printf '%s\n' "$BODY" | grep -q -e '^whoami' -e '^echo '; then
        fail "HTTP $STATUS, yet a backend ran: $BODY"; return 1
      fi
      SPOOF_REFUSED=$(( ${SPOOF_REFUSED:-0} + 1 ))
      return 0 ;;
  esac
  expect_status 200 || return 1
  SPOOF_SERVED=$(( ${SPOOF_SERVED:-0} + 1 ))
  if [ -n "${1:-}" ]; then
    [ "$(body_var SESSION_ID)" = "$1" ] || printf '%s\n' "$BODY" | grep -qi "^X-Session-Id: $1$" ||
      { fail "the real session was lost: $BODY"; return 1; }
  fi
}

# chk_spoof URL [ID]: the spoof set never reaches the backend (refused or
# stripped, expect_spoof_harmless); with ID the backend still sees that real
# session when the request is served.
chk_spoof() {
  local cookie=()
  [ -n "${2:-}" ] && cookie=(-H "Cookie: sessgate=$2")
  req "$(srv_url "$1")" "${SPOOF[@]}" "${cookie[@]}"
  expect_spoof_harmless "${2:-}"
}

# chk_spoof_each CHECK "URL..." "URL...": CHECK (chk_spoof or
# chk_spoof_folded) on each URL of the first list without a session, then
# on each URL of the second list with a logged-in user's real session.
chk_spoof_each() {
  local check=$1 url id
  for url in $2; do "$check" "$url"; done
  id=$(new_session --user alice)
  for url in $3; do "$check" "$url" "$id"; done
}

# The names a client could imitate, as a browser would spell them.
SPOOF_BASES=(X-Session-Id X-Session-User X-Session-Data X-Session-New
             X-Session-Data-Truncated X-Session-Csrf X-Session-Flash
             Session-Id Session-User Variable-Session-Id Variable-Session-User)

# chk_spoof_folded URL [ID]: issue #17.  Spellings generated by rule, not
# listed: for EVERY visible byte that is not alphanumeric (lighttpd folds
# each of them into '_'; Apache and nginx fold '-' and refuse or drop the
# rest, see SECURITY.md), each name of SPOOF_BASES with that byte as every
# separator, as the first one and as the last one.  One request per byte;
# each must be harmless (expect_spoof_harmless).
chk_spoof_folded() {
  local url c b h hdrs=() cookie=()
  url=$(srv_url "$1")
  [ -n "${2:-}" ] && cookie=(-H "Cookie: sessgate=$2")
  SPOOF_SERVED=0 SPOOF_REFUSED=0
  # control: without the imitations the same request is served
  req "$url" "${cookie[@]}"
  expect_status 200 || return 1
  for c in $(seq 33 126); do
    b=$(printf "\\x$(printf %02x "$c")")
    [[ $b =~ [A-Za-z0-9:] ]] && continue
    hdrs=()
    for h in "${SPOOF_BASES[@]}"; do
      hdrs+=(-H "${h//-/"$b"}: forged-$c-every"
             -H "${h/-/"$b"}: forged-$c-first"
             -H "${h%-*}$b${h##*-}: forged-$c-last")
    done
    req "$url" "${hdrs[@]}" "${cookie[@]}"
    expect_spoof_harmless "${2:-}" || { fail "separator byte $c (above)"; return 1; }
  done
  echo "# $1: $SPOOF_SERVED served (stripped), $SPOOF_REFUSED refused" >&3
  [ $(( SPOOF_SERVED + SPOOF_REFUSED )) -eq 31 ] || fail "expected 31 separator bytes"
}

# chk_cookie_copies URL ID OTHER: several cookies with the session name pick
# no session unless all name the same id (a client cannot choose the winner).
chk_cookie_copies() {
  local url id=$2 other=$3
  url=$(srv_url "$1")
  req "$url" -H "Cookie: sessgate=$id" -H "Cookie: sessgate=$other"
  expect_status 200
  [ "$(body_var SESSION_ID)" != "$id" ] && [ "$(body_var SESSION_ID)" != "$other" ] ||
    fail "two Cookie headers picked a session: $BODY"
  req "$url" -H "Cookie: a=1; sessgate=$id, sessgate=$other"
  expect_status 200
  [ "$(body_var SESSION_ID)" != "$id" ] && [ "$(body_var SESSION_ID)" != "$other" ] ||
    fail "comma-joined cookies picked a session: $BODY"
  req "$url" -H "Cookie: sessgate=$id; x=1; sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_ID)" = "$id" ] || fail "two copies of the same id: $BODY"
}

# chk_cookie_copies_each URL...: chk_cookie_copies on each URL with two
# fresh sessions of two users.
chk_cookie_copies_each() {
  local url a b
  a=$(new_session --user alice)
  b=$(new_session --user mallory)
  for url in "$@"; do chk_cookie_copies "$url" "$a" "$b"; done
}

# chk_hostile_values URL: CR, LF, NUL and non-ASCII in the stored data and a
# non-ASCII user reach the backend as one line each, the data as ASCII JSON.
chk_hostile_values() {
  local id data nul
  id=$(new_session --user 'jörg' --data '{"t":"a\r\nX-Evil: 1\r\n\r\nb","u":"é€"}')
  req "$(srv_url "$1")" -H "Cookie: sessgate=$id"
  expect_status 200
  if printf '%s\n' "$HDRS" | grep -i '^x-evil'; then fail "header split"; fi
  if printf '%s\n' "$BODY" | grep -i '^x-evil'; then fail "header split at the backend"; fi
  data=$(body_var SESSION_DATA)
  [ -n "$data" ] || data=$(printf '%s\n' "$BODY" | sed -n 's/^X-Session-Data: //Ip' | head -n 1)
  [[ $data == *'"a\r\nX-Evil: 1\r\n\r\nb"'* ]] || fail "CR/LF not escaped: $data"
  # (hex digits of \u escapes in either case: jansson writes upper case)
  [[ ${data,,} == *'"\u00e9\u20ac"'* ]] || fail "non-ASCII not escaped: $data"
  printf '%s\n' "$BODY" | grep -q -e '^SESSION_USER=j' -e '^X-Session-User: j' || fail "user lost: $BODY"
  # A user name with CR/LF cannot even be stored.
  run ! new_session --user $'x\r\nX-Evil: 1'
  # NUL: the store may refuse it; if it takes it, it must arrive escaped.
  if nul=$(new_session --data '{"z":"b\u0000c"}' 2>/dev/null); then
    req "$(srv_url "$1")" -H "Cookie: sessgate=$nul"
    expect_status 200
    printf '%s\n' "$BODY" | grep -qF 'b\u0000c' || fail "NUL not escaped: $BODY"
  fi
}

# chk_big_cookies URL [drops-big-params]: a 16 KB cookie and 1,000 cookies
# neither break the server nor select a session; the real cookie beside a
# 16 KB one (unless the server drops such params) and among 1,000 others
# still works.
chk_big_cookies() {
  local url id big many
  url=$(srv_url "$1")
  id=$(new_session --user alice)
  big=$(head -c 16384 /dev/zero | tr '\0' a)
  req "$url" -H "Cookie: sessgate=$big"
  expect_status 200
  [ -z "$(body_var SESSION_ID)" ] || [ "$(body_var SESSION_ID)" != "$big" ] || fail "16 KB id adopted"
  req "$url" -H "Cookie: junk=$big; sessgate=$id"
  expect_status 200
  if [ "${2:-}" = drops-big-params ]; then
    # The server drops the whole oversized Cookie param before the gateway
    # sees it (Apache mod_authnz_fcgi, AH02499): no session, never another.
    [ -z "$(body_var SESSION_ID)" ] || fail "a session beside a dropped 16 KB cookie: $BODY"
  else
    [ "$(body_var SESSION_ID)" = "$id" ] || fail "session lost beside a 16 KB cookie"
  fi
  many=$(seq 1000 | sed 's/.*/c&=v&/' | paste -sd';' | sed 's/;/; /g')
  req "$url" -H "Cookie: $many; sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_ID)" = "$id" ] || fail "session lost among 1,000 cookies"
}

# chk_truncated URL: session data over the inject cap is left out, the
# backend is told (SESSION_DATA_TRUNCATED=1), and nothing answers 500.
chk_truncated() {
  local id big
  big=$(head -c 30000 /dev/zero | tr '\0' z)
  id=$(new_session --user alice --data "{\"big\":\"$big\"}")
  req "$(srv_url "$1")" -H "Cookie: sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_ID)" = "$id" ] || fail "session lost: $(head -c 500 <<<"$BODY")"
  [ "$(body_var SESSION_DATA_TRUNCATED)" = 1 ] || fail "no truncation flag: $(head -c 500 <<<"$BODY")"
  if printf '%s\n' "$BODY" | grep -q zzzzzzzzzz; then fail "capped data was injected"; fi
}

# chk_post_body URL: a 10 MB POST body reaches the app intact (SHA-256).
chk_post_body() {
  local f="$BATS_TEST_TMPDIR/post.bin" want
  head -c 10485760 /dev/urandom > "$f"
  want=$(sha256sum < "$f" | cut -d' ' -f1)
  req "$(srv_url "$1")" --data-binary "@$f" -H 'Content-Type: application/octet-stream'
  expect_status 200
  [ "$(body_var BODY_SHA256)" = "$want" ] || fail "body changed: $(body_var BODY_SHA256) != $want"
}

# chk_auth_post URL: a POST through an auth-mode gateway is answered at once
# (an AUTHORIZER that read FCGI_STDIN would hang: Apache never ends it,
# lighttpd not on POST) and the body reaches the backend intact.
chk_auth_post() {
  local id f="$BATS_TEST_TMPDIR/auth-post.bin" want t0
  id=$(new_session --user alice)
  head -c 100000 /dev/urandom > "$f"
  want=$(sha256sum < "$f" | cut -d' ' -f1)
  t0=$(date +%s)
  req "$(srv_url "$1")" -H "Cookie: sessgate=$id" --data-binary "@$f" \
      -H 'Content-Type: application/octet-stream'
  expect_status 200
  [ "$(body_var SESSION_USER)" = alice ] || fail "$BODY"
  [ "$(body_var BODY_SHA256)" = "$want" ] || fail "body changed: $BODY"
  [ $(( $(date +%s) - t0 )) -lt 5 ] || fail "the POST took $(( $(date +%s) - t0 )) s"
}

# expect_login_location PATH NEXT: the Location header goes to PATH (absolute
# or not) with next= carrying NEXT percent-encoded (decoded back to compare).
expect_login_location() {
  local loc path next
  loc=$(header Location)
  path=$("$SG_PYTHON" -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).path)' "$loc")
  next=$("$SG_PYTHON" -c 'import sys, urllib.parse as u; q = u.parse_qs(u.urlsplit(sys.argv[1]).query); print(q.get("next", [""])[0])' "$loc")
  [ "$path" = "$1" ] || fail "Location $loc: path is not $1"
  [ "$next" = "$2" ] || fail "Location $loc: next=$next, want $2"
}

# chk_logs_clean: no process of the run left a sanitizer report or a crash
# in its log (matters under make SANITIZE=address,undefined check, where a
# gateway bug shows up only there).
chk_logs_clean() {
  if grep -n -E 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|Segmentation fault|core dumped' \
       "$SRV_RUNDIR"/*.log; then
    fail "a sanitizer or crash report in the server logs (above)"
  fi
}

# expect_closed: the request did not get backend content with a 200.
expect_closed() {
  [ "$STATUS" != 200 ] || fail "HTTP 200 with the gateway down: $BODY"
  if printf '%s\n' "$BODY" | grep -q '^whoami'; then fail "the backend ran without the gateway"; fi
}

# chk_closed URL...: a logged-in user's request to each URL, whose gateway
# is down, fails closed: no 200, neither the CGI nor the HTTP backend ran.
chk_closed() {
  local url id
  id=$(new_session --user alice)
  for url in "$@"; do
    req "$(srv_url "$url")" -H "Cookie: sessgate=$id"
    expect_closed
    if printf '%s\n' "$BODY" | grep -q '^echo'; then fail "HTTP backend ran: $url"; fi
  done
}
