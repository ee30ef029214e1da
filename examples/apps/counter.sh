#!/bin/sh
# counter.sh - the smallest useful app for `sessgate --mode cgi`, in POSIX sh.
#
# It shows the whole cgi-mode contract from the app's side:
#   - the session arrives in the environment (SESSION_ID, SESSION_USER,
#     SESSION_DATA as compact ASCII JSON, SESSION_NEW, SESSION_DATA_TRUNCATED);
#   - the app changes it only through reply headers, which the gateway applies
#     and strips before the reply leaves: X-Session-Set (merge JSON into data),
#     X-Session-Login (set the user and rotate the id), X-Session-Logout.
# The app never sees or sets the cookie itself.
#
#   ?login=NAME   log in as NAME (letters, digits, . _ - only: the name goes
#                 into a header, so anything else is refused here)
#   ?logout=1     end the session
#   (otherwise)   count this visit in the session ("n")
set -u

param() {   # param NAME: the raw value of NAME in QUERY_STRING (first one)
	printf '%s\n' "&${QUERY_STRING:-}" | tr '&' '\n' | sed -n "s/^$1=//p" | head -n 1
}

# The counter lives in the session data as {"n": N}.  SESSION_DATA is JSON we
# did not write by hand, so only accept a plain run of digits.
n=$(printf '%s' "${SESSION_DATA:-}" | sed -n 's/.*"n":\([0-9][0-9]*\).*/\1/p')
n=${n:-0}

login=$(param login)
logout=$(param logout)
status="200 OK"
extra=""
if [ "$logout" = 1 ]; then
	extra="X-Session-Logout: 1"
	msg="logged out"
elif [ -n "$login" ]; then
	case "$login" in
	*[!A-Za-z0-9._-]*) status="400 Bad Request"; msg="bad user name" ;;
	*) extra="X-Session-Login: $login"; msg="logged in as $login" ;;
	esac
else
	n=$((n + 1))
	extra="X-Session-Set: {\"n\":$n}"
	msg="count=$n"
fi

printf 'Status: %s\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n' "$status"
[ -n "$extra" ] && printf '%s\r\n' "$extra"
printf '\r\n'
printf '%s\n' "$msg"
printf 'SESSION_ID=%s\n' "${SESSION_ID:-}"
printf 'SESSION_USER=%s\n' "${SESSION_USER:-}"
printf 'SESSION_DATA=%s\n' "${SESSION_DATA:-}"
printf 'SESSION_NEW=%s\n' "${SESSION_NEW:-}"
printf 'SESSION_DATA_TRUNCATED=%s\n' "${SESSION_DATA_TRUNCATED:-}"
