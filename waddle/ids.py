"""Run ids and names, and the rule for names that become folder names.

A run id sorts by creation time (UTC, to the millisecond) and ends in random characters so
two processes starting in the same millisecond still differ: ``20261123-092857-123-k3x9q2``.
The randomness comes from the operating system (``secrets``), never from the global ``random``
module: a training script's seeded random numbers stay exactly as they would be without waddle,
and two runs of one seeded script (or forked children) still get different ids and names. Both
become folder names: waddle/names.py holds the rule they follow.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_ADJECTIVES = [
    "amber",
    "brave",
    "calm",
    "daring",
    "eager",
    "fancy",
    "gentle",
    "hardy",
    "icy",
    "jolly",
    "keen",
    "lively",
    "mellow",
    "nimble",
    "olive",
    "proud",
    "quiet",
    "rapid",
    "sunny",
    "tidy",
    "upbeat",
    "vivid",
    "witty",
    "young",
    "zesty",
    "bold",
    "crisp",
    "dusty",
    "frosty",
    "glad",
]
_NOUNS = [
    "duck",
    "goose",
    "swan",
    "heron",
    "crane",
    "egret",
    "gull",
    "tern",
    "puffin",
    "loon",
    "grebe",
    "teal",
    "wigeon",
    "mallard",
    "eider",
    "scoter",
    "pintail",
    "shoveler",
    "gadwall",
    "merganser",
    "coot",
    "rail",
    "stork",
    "ibis",
    "pelican",
    "gannet",
    "petrel",
    "auk",
]


_last_millis = [0]


def new_run_id() -> str:
    """A new id; ids made by one thread sort in the order they were made, even within a ms.

    No lock (init() may be interrupted anywhere, and a lock left held would hang the next
    init()): two threads racing in one millisecond get ids that differ in their suffix.
    """
    millis = max(int(time.time() * 1000), _last_millis[0] + 1)
    _last_millis[0] = millis
    seconds, rest = divmod(millis, 1000)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(seconds))
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(6))
    return f"{stamp}-{rest:03d}-{suffix}"


def random_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{1 + secrets.randbelow(999)}"
