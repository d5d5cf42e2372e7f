"""Recordings: MixMonitor WAV -> transcoded, checksummed, stored, linked and reviewed.

See docs/recordings.md. The dialer calls `Ingest.submit(RecordingJob(...))` when an attempt
ends; everything else (store, integrity check, retention, review API) hangs off
`RecordingsService`.
"""
