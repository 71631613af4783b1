"""The worker's pipeline: inboxes, batching, the commit order, dead letters, sealing of internal records, partitioning."""
