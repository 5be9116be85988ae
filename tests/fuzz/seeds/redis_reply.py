#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_redis_reply (tests/fuzz/corpus/redis_reply):
what a Redis server sends the agent's two connections, as records (see the
target's header comment). Run from the repository root:
    python3 tests/fuzz/seeds/redis_reply.py
"""
import os
import random

OUT = "tests/fuzz/corpus/redis_reply"
TID, SID = "T-0001", "S-042"
CHANNELS = ["payment:" + TID, "inventory:" + SID, "system:alerts",
            "posagent:probe:" + TID, "__redis__:invalidate"]


def bulk(s):
    b = s.encode() if isinstance(s, str) else s
    return b"$%d\r\n%s\r\n" % (len(b), b)


def arr(*items):
    return b"*%d\r\n" % len(items) + b"".join(items)


def message(ch, payload):
    return arr(bulk("message"), bulk(ch), bulk(payload))


def pmessage(pat, ch, payload):
    return arr(bulk("pmessage"), bulk(pat), bulk(ch), bulk(payload))


OK = b"+OK\r\n"


def handshake(flags, sub_id=42):
    auth = [OK] if flags & 1 else []
    select = [OK] if flags & 4 else []
    cmd = b"".join(auth + select + [OK])
    subs = b"".join(arr(bulk("subscribe"), bulk(c), b":%d\r\n" % (i + 1))
                    for i, c in enumerate(CHANNELS))
    sub = b"".join(auth + select + [OK, b":%d\r\n" % sub_id]) + subs
    return cmd, sub


def records(flags, parts, seed):
    """parts: list of (conn, bytes) with conn 'cmd', 'sub' or 'restart'."""
    rnd = random.Random(seed)
    out = bytearray([flags])
    for conn, data in parts:
        if conn == "restart":
            out.append(0x7f)
            continue
        hi = 0x80 if conn == "sub" else 0
        at = 0
        while at < len(data):
            n = min(len(data) - at, rnd.choice([1, 2, 3, 7, 16, 64, 127]))
            out.append(hi | (n - 1))
            out += data[at:at + n]
            at += n
    return bytes(out)


def online(flags):
    cmd, sub = handshake(flags)
    # After online the agent sends GET status and CLIENT TRACKINGINFO.
    after = bulk("online") + arr(bulk("flags"), arr(bulk("bcast")), bulk("redirect"),
                                 b":42\r\n", bulk("prefixes"), arr(bulk("product:")))
    return [("cmd", cmd), ("sub", sub), ("cmd", after)]


PAY = ('{"type":"PAYMENT_REQUESTED","transactionId":"tx-123","amount":12.34,'
       '"currency":"EUR","lines":[{"name":"Coffee","qty":2,"amount":5.00},'
       '{"name":"Cookie","qty":1,"amount":2.34}],"ts":1764412800000}')
INV = ('{"type":"INVENTORY_UPDATED","storeId":"S-042","productId":"P-7",'
       '"quantity":12,"lowStockThreshold":5}')
ALERT = '{"type":"SYSTEM_ALERT","severity":"warning","message":"Closing in 10 minutes"}'
INVAL = '{"type":"CACHE_INVALIDATE","pattern":"product:*"}'

seeds = {
    "01-handshake-plain": (0, online(0)),
    "02-handshake-auth-select": (7, online(7)),
    "03-payment-message": (0, online(0) + [("sub", message(CHANNELS[0], PAY))]),
    "04-inventory-message": (0, online(0) + [("sub", message(CHANNELS[1], INV))]),
    "05-system-messages": (0, online(0) + [("sub", message(CHANNELS[2], ALERT) +
                                              message(CHANNELS[2], INVAL))]),
    "06-pmessage": (0, online(0) + [("sub", pmessage("system:*", CHANNELS[2], ALERT))]),
    "07-invalidate-keys": (0, online(0) + [("sub", message(
        CHANNELS[4], arr(bulk("product:P-7"), bulk("inventory:S-042:P-7"))))]),
    "08-invalidate-flush": (0, online(0) + [("sub", arr(bulk("message"), bulk(CHANNELS[4]),
                                                          b"*-1\r\n"))]),
    "09-probe-echo": (0, online(0) + [("sub", message(CHANNELS[3], "1"))]),
    "10-auth-refused": (1, [("cmd", b"-WRONGPASS invalid username-password pair\r\n"),
                            ("sub", b"-WRONGPASS invalid username-password pair\r\n")]),
    "11-select-refused": (4, [("cmd", b"-ERR DB index is out of range\r\n")]),
    "12-protocol-error": (0, [("cmd", b"?garbage\r\n")]),
    "13-unsolicited": (0, [("cmd", OK * 4)]),
    "14-reconnect": (0, online(0) + [("cmd", b"-LOADING Redis is loading\r\n" + b"!x\r\n"),
                                      ("restart", b"")] + online(0) +
                     [("sub", message(CHANNELS[0], PAY))]),
    "15-subscribe-wrong": (0, [("cmd", OK), ("sub", OK + b":7\r\n" + arr(bulk("psubscribe"),
                                                                         bulk("x"), b":1\r\n"))]),
    "16-other-channel": (0, online(0) + [("sub", message("other:chan", "{}") +
                                            arr(bulk("message"), b":1\r\n", bulk("x")))]),
    "17-nested-and-nil": (0, online(0)[:2] + [("cmd", arr(arr(b"$-1\r\n", b":-5\r\n"),
                                                          b"+status\r\n", b"-ERR e\r\n") +
                                               b"$-1\r\n")]),
    "18-setname-refused": (0, [("cmd", b"-ERR unknown command 'CLIENT'\r\n"),
                               ("sub", b"-NOPERM no permission\r\n")]),
    "19-trackinginfo-wrong": (0, online(0)[:2] + [("cmd", bulk("x") + arr(bulk("redirect"),
                                                                          b":7\r\n"))]),
    # The RESP guard (agent/link/resp_guard.c): refused at the header.
    "20-oversize-message": (0, online(0) + [("sub", b"*3\r\n" + bulk("message") +
                                             bulk(CHANNELS[0]) + b"$2147483648\r\n" +
                                             b"x" * 200)]),
    "21-oversize-reply": (0, online(0)[:2] + [("cmd", b"$300000\r\n" + b"x" * 100)]),
    "22-endless-array": (0, online(0) + [("cmd", b"*2147483647\r\n" + b":1\r\n" * 50)]),
    "23-resp3-push": (0, online(0) + [("sub", b">3\r\n" + bulk("message") + bulk("x") +
                                       bulk("y"))]),
    # More messages than one loop turn hands out.
    "24-flood": (0, online(0) + [("sub", message(CHANNELS[1], "not json") * 200)]),
}

os.makedirs(OUT, exist_ok=True)
for i, (name, (flags, parts)) in enumerate(sorted(seeds.items())):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(records(flags, parts, i))
print("wrote %d seeds to %s" % (len(seeds), OUT))
