"""The worker's state: changelog-backed tables, their stores and recovery, model snapshots, codecs."""
