"""Runs last (file name): after everything above has used the shared server,
its store must still be consistent and its temp dir empty after GC."""


def test_shared_store_is_consistent_after_the_suite(server):
    server.admin_gc(grace_secs=0)
    assert server.tmp_entries() == [], f"DIR/tmp not empty after GC: {server.tmp_entries()}"
    server.assert_fsck_clean()
