"""``faust -A streams.app worker`` entry point (``lapse worker`` does the same)."""

from streams.service.worker import build_service

service = build_service()
app = service.app
