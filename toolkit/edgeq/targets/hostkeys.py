"""known_hosts, read once per process while the file is unchanged.

paramiko's `SSHClient.load_host_keys` parses every key of the file and, for each entry,
looks its host names up in the entries read so far: O(K²) in the file's K entries, and it
ran for every connection — a lab's known_hosts holds every device of the fleet, so each
handshake cost more the bigger the fleet (about 65 000 host-name comparisons per
connection at 256 devices). Here the file is parsed once and shared; each connection gets
its own copy of the entries (what AutoAddPolicy adds and saves stays its own, as before),
and a file that changed (inode, size or mtime) is read again.
"""

from __future__ import annotations

import threading
from pathlib import Path

_lock = threading.Lock()
_cache: dict[str, tuple[tuple[int, int, int], object]] = {}


def _parsed(path: Path):
    import paramiko

    st = path.stat()
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    key = str(path)
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    keys = paramiko.HostKeys()
    keys.load(key)
    with _lock:
        _cache[key] = (stamp, keys)
    return keys


def load_into(client, path: Path) -> None:
    """What `client.load_host_keys(path)` does, from the shared parse of `path`."""
    from paramiko.hostkeys import HostKeyEntry

    parsed = _parsed(path)
    mine = client.get_host_keys()
    # paramiko has no public way to add parsed entries without scanning them all again
    mine._entries.extend(HostKeyEntry(list(e.hostnames), e.key) for e in parsed._entries)
    client._host_keys_filename = str(path)  # AutoAddPolicy saves new keys here
