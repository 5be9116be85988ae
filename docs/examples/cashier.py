#!/usr/bin/python3
"""A POS application's first steps through the agent's local socket, with
Python's redis client (Debian: python3-redis): log a cashier in, check a rate
limit, read a price, bump a counter (docs/local-api.md).

    python3 cashier.py [/run/posagent/agent.sock]

Prints the same lines as cashier.c; exits 0 when the rate limit and the
price could be asked.
"""
import sys

import redis

path = sys.argv[1] if len(sys.argv) > 1 else "/run/posagent/agent.sock"
r = redis.Redis(unix_socket_path=path, socket_timeout=5, decode_responses=True)
rc = 0

# A cashier logs in: the session lives 8 hours, also while offline.
try:
    ok = r.set("session:example-C-7", '{"cashierId":"C-7","name":"Ann"}', ex=28800)
    print("login: %s" % ("OK" if ok else ok))
except redis.ResponseError as e:
    print("login: refused: %s" % e)

# At most 5 logins of that cashier in 15 minutes, shared by every till.
try:
    allowed, remaining, reset, source = r.execute_command("RATELIMIT", "login:C-7", 900000, 5)
    print("ratelimit: allowed=%d remaining=%d reset=%d source=%s"
          % (allowed, remaining, reset, source))
except redis.ResponseError as e:
    print("ratelimit: error: %s" % e)
    rc = 1

# A price: the local copy, fresh online, the last known one offline.
try:
    v = r.get("product:P-1")
    print("product: %s" % (v if v is not None else "(none)"))
except redis.ResponseError as e:
    print("product: error: %s" % e)
    rc = 1

# A sale counted.
try:
    print("counter: %d" % r.incrby("counter:example:sales", 1))
except redis.ResponseError as e:
    print("counter: error: %s" % e)

sys.exit(rc)
