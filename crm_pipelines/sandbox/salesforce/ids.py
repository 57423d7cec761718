"""Salesforce record ids: key prefix + pod + sequence, 15 case-sensitive characters + 3-char checksum (FACTS §10).

Seeded ids are a pure function of the universe row (sequence number = the universe's own id), so two
sandboxes seeded alike hand out the same ids; new records continue from a per-object counter.
"""

from __future__ import annotations

import numpy as np

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
POD = "8d0"  # 2-char instance id + the reserved character, as on a real pod
SEQ_LEN = 9
_B62 = np.array(list(BASE62))
_SUF = np.array(list(_SUFFIX))


def checksum(id15: str) -> str:
    """The 3-character suffix: one bit per uppercase letter in each 5-character chunk."""
    out = []
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX[bits])
    return "".join(out)


def make_id(prefix: str, sequence: int) -> str:
    digits = []
    for _ in range(SEQ_LEN):
        sequence, r = divmod(sequence, 62)
        digits.append(BASE62[r])
    id15 = prefix + POD + "".join(reversed(digits))
    return id15 + checksum(id15)


def make_ids(prefix: str, sequences: np.ndarray) -> np.ndarray:
    """Vectorised ``make_id`` for a million rows: digit matrix, then checksum bits per chunk."""
    seq = np.asarray(sequences, dtype=np.int64)
    n = len(seq)
    head = np.array(list(prefix + POD))
    digits = np.empty((n, SEQ_LEN), dtype=np.int64)
    rest = seq.copy()
    for i in range(SEQ_LEN - 1, -1, -1):
        digits[:, i] = rest % 62
        rest //= 62
    chars = np.empty((n, 15), dtype="<U1")
    chars[:, :6] = head
    chars[:, 6:] = _B62[digits]
    upper = (chars >= "A") & (chars <= "Z")
    weights = 1 << np.arange(5)
    suffix = np.stack([_SUF[(upper[:, c * 5 : c * 5 + 5] * weights).sum(axis=1)] for c in range(3)], axis=1)
    full = np.concatenate([chars, suffix], axis=1)
    return full.view("<U18").ravel()


def is_valid_id(value: str) -> bool:
    if len(value) not in (15, 18) or any(c not in BASE62 for c in value):
        return False
    return len(value) == 15 or checksum(value[:15]) == value[15:].upper()


def to_18(value: str) -> str:
    """The case-insensitive 18-character form of a 15- or 18-character id."""
    if len(value) == 18:
        return value[:15] + value[15:].upper()
    return value + checksum(value)


def prefix_of(value: str) -> str:
    return value[:3]
