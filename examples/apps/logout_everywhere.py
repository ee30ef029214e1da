#!/usr/bin/env python3
"""logout_everywhere.py - end every session of one user ("log out on all
devices"), e.g. after a password change.

  logout_everywhere.py [--store PATH] [--dry-run] USER

Lists the user's live sessions (id, created, last use), deletes them and
prints how many went.  A session that disappears meanwhile (expired, or
the user logged out) is not an error.  The store is --store, else
$SESSGATE_STORE.  Exit 0 done, 1 on a store error, 2 on usage errors.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import sessgate
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)),
                                    "bindings", "python"))
    import sessgate


def stamp(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def main(argv) -> int:
    p = argparse.ArgumentParser(description="Delete every session of a user.")
    p.add_argument("--store", default=os.environ.get("SESSGATE_STORE"),
                   help="session store (default $SESSGATE_STORE)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the sessions, delete nothing")
    p.add_argument("user")
    args = p.parse_args(argv)
    if not args.store:
        p.error("no store: give --store PATH or set SESSGATE_STORE")
    try:
        with sessgate.Store(args.store) as store:
            deleted = 0
            for s in store.sessions(user=args.user):
                print(f"{s.id} created {stamp(s.created)} last used {stamp(s.accessed)}")
                if args.dry_run:
                    continue
                try:
                    s.delete()
                    deleted += 1
                except sessgate.NotFound:
                    pass                      # gone meanwhile: same outcome
            verb = "would delete" if args.dry_run else "deleted"
            n = store.count(user=args.user) if args.dry_run else deleted
            print(f"{verb} {n} session(s) of {args.user}")
    except sessgate.Error as e:
        print(f"logout_everywhere: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
