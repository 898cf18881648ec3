"""The ids the bridge makes up (bridge/ids.py): the right shape, and never the same in two processes, a forked
child included (the quick suite's bridges are forked from one pre-imported interpreter)."""

from __future__ import annotations

import os
import re
import uuid

from bridge.ids import otid, request_id


def test_a_request_id_is_12_hex_digits_and_an_otid_a_version_4_uuid() -> None:
    assert all(re.fullmatch(r"[0-9a-f]{12}", request_id()) for _ in range(1000))
    for _ in range(1000):
        made = otid()
        parsed = uuid.UUID(made)
        assert str(parsed) == made and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert len({otid() for _ in range(10_000)}) == 10_000


def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then out without running the parent's cleanup
        os.write(write, " ".join([otid(), request_id()]).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as child:
        theirs = child.read().split()
    assert len(theirs) == 2 and theirs != [otid(), request_id()]
