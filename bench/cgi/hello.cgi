#!/bin/sh
# hello.cgi - the trivial CGI both cgi-mode sessgate and fcgiwrap run in the
# benchmark: what is measured is the runner (fork, exec, pipes), not the app.
printf 'Content-Type: text/plain\r\n\r\nok\n'
