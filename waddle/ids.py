"""Run ids and names, and the rule for names that become folder names.

A run id sorts by creation time (UTC, to the millisecond) and ends in random characters so
two processes starting in the same millisecond still differ: ``20261123-092857-123-k3x9q2``.
Project names and run ids become folders, so they are checked to stay inside the log folder.
"""

from __future__ import annotations

import random
import threading
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


_last_millis = 0
_lock = threading.Lock()


def new_run_id() -> str:
    """A new id; ids made by one process sort in the order they were made, even within a ms."""
    global _last_millis
    with _lock:
        millis = max(int(time.time() * 1000), _last_millis + 1)
        _last_millis = millis
    seconds, rest = divmod(millis, 1000)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(seconds))
    suffix = "".join(random.choices(_ALPHABET, k=6))
    return f"{stamp}-{rest:03d}-{suffix}"


def random_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(1, 999)}"
