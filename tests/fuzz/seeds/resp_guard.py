#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_resp_guard (tests/fuzz/corpus/resp_guard):
byte 0 picks the limits, byte 1 how the stream is cut, then what a Redis
server sends (see the target's header comment). Run from the repository root:
    python3 tests/fuzz/seeds/resp_guard.py
"""
import os

OUT = "tests/fuzz/corpus/resp_guard"

# Limit selectors (byte 0): 0x70 is the defaults but depth 8; bulk 8,
# elements 1, depth 1; bulk 64, elements 3, depth 2, small line and reply.
DEFAULTS, TINY, SMALL = 0x70, 0x05, 0x9a


def bulk(s):
    b = s.encode() if isinstance(s, str) else s
    return b"$%d\r\n%s\r\n" % (len(b), b)


def arr(*items):
    return b"*%d\r\n" % len(items) + b"".join(items)


SEEDS = {
    "01-status-error-int": (DEFAULTS, b"+OK\r\n-ERR unknown command\r\n:0\r\n:-1\r\n"),
    "02-bulk-nil": (DEFAULTS, bulk("hello") + b"$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n"),
    "03-handshake": (DEFAULTS, b"+OK\r\n+OK\r\n:42\r\n" + arr(bulk("subscribe"),
                     bulk("payment:T-0001"), b":1\r\n")),
    "04-message": (DEFAULTS, arr(bulk("message"), bulk("payment:T-0001"),
                   bulk('{"type":"PAYMENT_REQUESTED"}'))),
    "05-pmessage": (DEFAULTS, arr(bulk("pmessage"), bulk("p*"), bulk("payment:T-0001"),
                    bulk("{}"))),
    "06-invalidate": (DEFAULTS, arr(bulk("message"), bulk("__redis__:invalidate"),
                      arr(bulk("product:P-1"), bulk("user:U-1")))),
    "07-role": (DEFAULTS, arr(bulk("master"), b":3129659\r\n",
                arr(arr(bulk("127.0.0.1"), bulk("9001"), bulk("3129242"))))),
    "08-cluster-slots": (DEFAULTS, arr(arr(b":0\r\n", b":5460\r\n",
                         arr(bulk("127.0.0.1"), b":30001\r\n", bulk("abc"), arr())))),
    "09-bulk-2gb": (DEFAULTS, b"$2147483648\r\n" + b"x" * 64),
    "10-endless-array": (DEFAULTS, b"*2147483647\r\n" + b":1\r\n" * 64),
    "11-huge-count": (DEFAULTS, b"*8888888888\r\n"),
    "12-resp3": (DEFAULTS, b"%1\r\n+a\r\n:1\r\n~1\r\n>3\r\n_\r\n,1.5\r\n#t\r\n"),
    "13-too-deep": (DEFAULTS, b"*1\r\n" * 9 + b":1\r\n"),
    "14-long-header": (DEFAULTS, b":-12345678901234567890\r\n"),
    "15-bad-numbers": (DEFAULTS, b":01\r\n"),
    "16-bad-crlf": (DEFAULTS, b"$3\r\nabcX\r\n"),
    "17-cr-in-status": (DEFAULTS, b"+a\rb\r\n-c\r\r\n"),
    "18-tiny-limits": (TINY, bulk("12345678") + bulk("123456789")),
    "19-tiny-elements": (TINY, arr(b":1\r\n") + arr(b":1\r\n", b":2\r\n")),
    "20-tiny-depth": (TINY, arr(arr())),
    "21-small-line": (SMALL, b"+0123456789abcdef\r\n+0123456789abcdefg\r\n"),
    "22-small-reply": (SMALL, arr(bulk("a" * 60), bulk("b" * 60), bulk("c" * 60))),
    "23-mget": (DEFAULTS, arr(bulk('{"name":"Espresso"}'), b"$-1\r\n", bulk(""))),
    "24-scan": (DEFAULTS, arr(bulk("1234"), arr(bulk("inventory:S-042:P-1"),
                bulk("inventory:S-042:P-2")))),
    "25-split-header": (DEFAULTS, b"$1" + b"0\r\n0123456789\r\n"),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (limits, stream) in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(bytes([limits, len(name) * 37 % 256]) + stream)


if __name__ == "__main__":
    main()
