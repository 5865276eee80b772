"""The CephFS driver: unit tests over a dict-backed fake of its attribute calls, and tests
on a real single-node cluster (tests/support/cephfs.py)."""
