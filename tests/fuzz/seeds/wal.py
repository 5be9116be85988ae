#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_wal (tests/fuzz/corpus/wal): redo
payloads as the store's writer logs them (agent/store/wal.h: kind 'P' or
'D', database, key length le32, value length le32, key, value), good and
damaged. Run from the repository root:
    python3 tests/fuzz/seeds/wal.py
"""
import os
import struct

OUT = "tests/fuzz/corpus/wal"


def entry(kind, db, key, value=b"", klen=None, vlen=None):
    klen = len(key) if klen is None else klen
    vlen = len(value) if vlen is None else vlen
    return kind + bytes([db]) + struct.pack("<II", klen, vlen) + key + value


SEEDS = {
    "01-empty": b"",
    "02-put": entry(b"P", 0, b"product:P-1", b'{"name":"Espresso","price":2.5}'),
    "03-delete": entry(b"D", 1, b"product:P-1"),
    "04-journal-and-seen": entry(b"P", 4, b"tx-1001", b"\x01" * 96)
    + entry(b"P", 5, b"itx-1001", struct.pack("<Q", 7))
    + entry(b"P", 5, b"o" + struct.pack(">Q", 7), b"tx-1001"),
    "05-outbox-append-and-ack": entry(b"P", 3, struct.pack(">Q", 42), b"\x00" * 24 + b"transaction:S-042{}")
    + entry(b"P", 0, b"outbox_next", struct.pack("<Q", 43))
    + entry(b"D", 3, struct.pack(">Q", 41)),
    "06-bad-kind": entry(b"X", 0, b"k", b"v"),
    "07-key-length-overflow": entry(b"P", 0, b"k", b"v", klen=0xFFFFFFFF),
    "08-value-length-overflow": entry(b"P", 0, b"k", b"v", vlen=0xFFFFFFF0),
    "09-delete-with-value": entry(b"D", 0, b"k", b"v"),
    "10-empty-key": entry(b"P", 0, b"", b"v"),
    "11-truncated-header": b"P\x00\x03\x00\x00",
    "12-unknown-database": entry(b"P", 200, b"k", b"v"),
    "13-good-then-bad": entry(b"P", 0, b"a", b"1") + entry(b"Q", 0, b"b", b"2"),
    "14-large-value": entry(b"P", 1, b"product:big", b"x" * 60000),
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print("wrote %d seeds to %s" % (len(SEEDS), OUT))
