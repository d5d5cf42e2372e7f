"""MixMonitor output: RIFF WAVE, PCM 16-bit, mono, 8000 Hz, like `MixMonitor(...,b)`."""

from __future__ import annotations

import math
import struct
from pathlib import Path

RATE = 8000


def _tone_second() -> bytes:
    # Two mixed tones (the "seat" and the "customer"), so the file is audibly not silent.
    samples = (
        int(
            6000 * math.sin(2 * math.pi * 425 * i / RATE)
            + 3000 * math.sin(2 * math.pi * 1000 * i / RATE)
        )
        for i in range(RATE)
    )
    return struct.pack(f"<{RATE}h", *samples)


_SECOND = _tone_second()


def wav_header(n_bytes: int) -> bytes:
    return (
        b"RIFF"
        + struct.pack("<I", 36 + n_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16)
        + b"data"
        + struct.pack("<I", n_bytes)
    )


def write_recording(path: Path, seconds: float) -> int:
    """Write `seconds` of tone (0 gives the 44-byte header-only file); returns the size."""
    n_samples = max(0, round(seconds * RATE))
    n_bytes = n_samples * 2
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(wav_header(n_bytes))
        full, rest = divmod(n_bytes, len(_SECOND))
        for _ in range(full):
            f.write(_SECOND)
        f.write(_SECOND[:rest])
    return 44 + n_bytes
