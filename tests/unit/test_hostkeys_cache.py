"""known_hosts is parsed once per process while unchanged (it was per connection, O(K²))."""

from __future__ import annotations

import os

import paramiko

from edgeq.targets import hostkeys


def _file(tmp_path, hosts: int):
    key = paramiko.RSAKey.generate(1024)
    path = tmp_path / "known_hosts"
    path.write_text(
        "".join(
            f"[127.0.0.1]:{20000 + i} {key.get_name()} {key.get_base64()}\n" for i in range(hosts)
        )
    )
    return path, key


def test_the_parse_is_shared_until_the_file_changes(tmp_path, monkeypatch):
    path, key = _file(tmp_path, 50)
    loads = []
    real = paramiko.HostKeys.load
    monkeypatch.setattr(paramiko.HostKeys, "load", lambda self, f: loads.append(f) or real(self, f))
    clients = [paramiko.SSHClient() for _ in range(3)]
    for c in clients:
        hostkeys.load_into(c, path)
    assert len(loads) == 1
    for c in clients:  # each connection sees every entry, as with load_host_keys
        assert c.get_host_keys().lookup("[127.0.0.1]:20049")[key.get_name()] == key
        assert c._host_keys_filename == str(path)
    # what one connection adds (AutoAddPolicy) is not seen by the others
    clients[0].get_host_keys().add("[127.0.0.1]:1", key.get_name(), key)
    assert clients[1].get_host_keys().lookup("[127.0.0.1]:1") is None
    with open(path, "a") as fh:  # changed: read again
        fh.write(f"[127.0.0.1]:2 {key.get_name()} {key.get_base64()}\n")
    os.utime(path, ns=(0, 1))
    c = paramiko.SSHClient()
    hostkeys.load_into(c, path)
    assert len(loads) == 2 and c.get_host_keys().lookup("[127.0.0.1]:2") is not None


def test_a_client_that_only_checks_gets_its_own_hosts_entries(tmp_path):
    """A lab's known_hosts holds the whole fleet: a connection that checks one server's key
    copies (and paramiko then scans) that server's entries, not K; hashed names, which only
    a hash tells apart, come along; a client that may add keys (and save all it holds)
    gets every entry."""
    path, key = _file(tmp_path, 300)
    salted = paramiko.HostKeys.hash_host("[127.0.0.1]:30000")
    with open(path, "a") as fh:
        fh.write(f"{salted} {key.get_name()} {key.get_base64()}\n")
    os.utime(path, ns=(0, 2))
    checking, adding = paramiko.SSHClient(), paramiko.SSHClient()
    hostkeys.load_into(checking, path, "[127.0.0.1]:20123")
    hostkeys.load_into(adding, path)
    mine = checking.get_host_keys()
    assert len(mine._entries) == 2  # its own entry and the hashed one
    assert mine.lookup("[127.0.0.1]:20123")[key.get_name()] == key
    assert mine.lookup("[127.0.0.1]:30000")[key.get_name()] == key  # by its hash
    assert mine.lookup("[127.0.0.1]:20124") is None
    assert len(adding.get_host_keys()._entries) == 301
    unknown = paramiko.SSHClient()
    hostkeys.load_into(unknown, path, "[10.0.0.9]:22")
    assert unknown.get_host_keys().lookup("[10.0.0.9]:22") is None
