"""Golden vectors for hash recipe v1, written from DESIGN.md section 3 alone.

This is an independent implementation of the recipe (Python + the `blake3` package), so the
Rust code is checked against the specification rather than against itself.
Run: pip install blake3 && python3 tests/golden/make_vectors.py > tests/golden/hash_v1.json
"""
import json
import struct

import blake3

KEY_CONTEXT = "ingestor 2026 vault hash key v1"


def encode(values):
    out = bytearray()
    for v in values:
        if v is None:
            out += b"\x00" + struct.pack("<I", 0)
        else:
            b = v.encode("utf-8")
            out += b"\x01" + struct.pack("<I", len(b)) + b
    return bytes(out)


def hk(values, key_secret=None):
    data = encode(values)
    if key_secret is None:
        digest = blake3.blake3(data).digest()
    else:
        key = blake3.blake3(key_secret.encode(), derive_key_context=KEY_CONTEXT).digest()
        digest = blake3.blake3(data, key=key).digest()
    return digest[:16].hex()


CASES = [
    ("empty list", []),
    ("one value", ["bank", "TX-1001"]),
    ("null", ["bank", None]),
    ("empty string", ["bank", ""]),
    ("separator injection a", ["bank", "a|b", "c"]),
    ("separator injection b", ["bank", "a", "b|c"]),
    ("non-ascii", ["bank", "Müller & Söhne – café"]),
    ("decimal canonical", ["card", "2024-03-01", "-12.5", "true"]),
    ("content key occurrence", ["card", "2024-03-01", "4.2", "Coffee", "2"]),
]

doc = {
    "recipe": "v1",
    "cases": [{"name": n, "values": v, "key_secret": None, "hash": hk(v)} for n, v in CASES]
    + [
        {
            "name": "keyed",
            "values": ["bank", "TX-1001"],
            "key_secret": "correct horse",
            "hash": hk(["bank", "TX-1001"], "correct horse"),
        }
    ],
}
print(json.dumps(doc, indent=2, ensure_ascii=False))
