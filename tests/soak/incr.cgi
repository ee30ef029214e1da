#!/bin/sh
# tests/soak/incr.cgi - the CGI app of the soak test, run by
# `sessgate --mode cgi`.  Shell builtins only (no fork per request beyond
# the gateway's own), so the load lands on the gateway, not on sed.
#
# The operation is the last part of SCRIPT_NAME (/cgi/OP):
#   incr    SESSION_DATA {"n":N} -> X-Session-Set {"n":N+1}, "applied n=N+1".
#           The gateway answers 409 instead when the session changed while
#           this ran (a concurrent increment), so only a 200 is an increment
#           that counts.  Without a session or a counter: 412, never a
#           new session (X-Session-Set without a session would make one).
#   login   ?u=NAME -> X-Session-Login: NAME (a new session, its cookie)
#   logout  X-Session-Logout: 1
#   rotate  X-Session-Rotate: 1 (a new id and cookie)
#   peek    nothing; used with forged cookies
# Every reply carries X-Soak-Sid: the SESSION_ID the app was given ("-" for
# none), which nginx logs: a forged cookie must show "-".
set -u
sid=${SESSION_ID:-}
reply() {   # reply STATUS EXTRA-HEADER BODY
	printf 'Status: %s\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n' "$1"
	printf 'X-Soak-Sid: %s\r\n' "${sid:--}"
	[ -z "$2" ] || printf '%s\r\n' "$2"
	printf '\r\n%s\n' "$3"
	exit 0
}
case ${SCRIPT_NAME:-} in
*/incr)
	[ -n "$sid" ] || reply "412 Precondition Failed" "" "no session"
	d=${SESSION_DATA:-}
	case $d in
	*'"n":'[0-9]*) n=${d#*\"n\":}; n=${n%%[!0-9]*} ;;
	*) reply "412 Precondition Failed" "" "no counter in the session" ;;
	esac
	n=$((n + 1))
	reply "200 OK" "X-Session-Set: {\"n\":$n}" "applied n=$n"
	;;
*/login)
	u=${QUERY_STRING:-}
	u=${u#u=}
	case $u in
	'' | *[!a-z0-9-]*) reply "400 Bad Request" "" "bad user name" ;;
	esac
	reply "200 OK" "X-Session-Login: $u" "logged in"
	;;
*/logout) reply "200 OK" "X-Session-Logout: 1" "logged out" ;;
*/rotate) reply "200 OK" "X-Session-Rotate: 1" "rotated" ;;
*/peek) reply "200 OK" "" "peek" ;;
*) reply "404 Not Found" "" "no such operation" ;;
esac
