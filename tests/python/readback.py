"""readback.py: proves the format promise of STREAM.md: the six-line Python
reader (zstandard + msgpack + numpy) reads a stream mmpath wrote and gets the
same numbers as `mpk cat` and as the table it was packed from.

usage: readback.py STREAM.mpk CAT.jsonl TABLE.tsv clinical|omics
Interpreter: any python3 with zstandard, msgpack and numpy; CI uses Debian 12's
/usr/bin/python3 with python3-zstandard 0.20, python3-msgpack 1.0.3 and
python3-numpy 1.24. Prints a line per check; exit 0 when all hold.
"""
import json
import math
import sys

import msgpack
import numpy as np
import zstandard


def read_stream(path):
    """The reader of STREAM.md, verbatim in substance."""
    out = []
    with open(path, "rb") as fh:
        rd = zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True)
        for rec in msgpack.Unpacker(rd, raw=False, max_buffer_size=1 << 30):
            out.append(rec)
    return out


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def main():
    stream, jsonl, table, kind = sys.argv[1:5]
    maps = read_stream(stream)
    header, trailer = maps[0], maps[-1]
    records = maps[1:-1]
    bad = 0

    def check(cond, what):
        nonlocal bad
        print(("ok: " if cond else "FAIL: ") + what)
        bad += not cond

    check(header.get("mpk") == 1 and header.get("kind") == kind, "header mpk=1 kind=" + kind)
    check(trailer.get("mpk_end") == len(records), "trailer count %d" % len(records))
    try:
        import xxhash
        h = xxhash.xxh64(seed=0)
        for r in records:
            h.update(msgpack.packb(r, use_bin_type=True))
        check(h.hexdigest() == trailer["digest"], "trailer digest is XXH64 of the records")
    except ImportError:
        print("skip: xxhash module not installed (digest not recomputed)")

    cat = [json.loads(line) for line in open(jsonl)]
    check(len(cat) == len(records), "mpk cat printed %d records" % len(cat))
    rows = [line.rstrip("\n").split("\t") for line in open(table)]
    names, rows = rows[0], rows[1:]
    check(len(rows) == len(records), "table has %d rows" % len(rows))

    mism = 0
    for rec, js, row in zip(records, cat, rows):
        if kind == "clinical":
            cells = dict(zip(names, row))
            want_time = float(cells["time"])
            if rec["id"] != cells["id"] or rec["time"] != want_time or rec["time"] != js["time"]:
                mism += 1
            if rec["event"] != int(cells["event"]) or js["event"] != rec["event"]:
                mism += 1
            if rec["label"] != cells["label"] or js["label"] != rec["label"]:
                mism += 1
            x = rec["x"]
            if cells["x"] == "NA":
                mism += x is not None or js["x"] is not None
            else:
                mism += not (x == float(cells["x"]) == js["x"])
        else:
            t = rec["v"]
            v = np.frombuffer(t["data"], t["type"]).reshape(t["shape"])
            want = np.array([np.nan if c == "NA" else float(c) for c in row[1:]], dtype=np.float32)
            if rec["id"] != row[0] or not np.array_equal(v, want, equal_nan=True):
                mism += 1
            got = [np.nan if a is None else a for a in js["v"]["data"]]
            if not np.array_equal(np.array(got, dtype=np.float32), v, equal_nan=True):
                mism += 1
    check(mism == 0, "%d records equal in the stream, mpk cat and the table (%d mismatches)"
          % (len(records), mism))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
