"""Audio work done in the worker pool: validate the WAV, analyse it, transcode it.

Everything here is synchronous and picklable (plain arguments, plain results) so it runs in a
thread or a child process. `process_wav` never raises: a bad file becomes a result with
`kind="corrupt"` (or `"failed"` when ffmpeg itself fails), so one file cannot stop the worker.
"""

from __future__ import annotations

import hashlib
import math
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydub import AudioSegment
from pydub.exceptions import CouldntEncodeError
from pydub.utils import audioop

from recordings.exceptions import CorruptAudio

WAV_HEADER_BYTES = 44
CONTENT_TYPES = {"mp3": "audio/mpeg", "ogg": "audio/ogg"}
_CODECS = {"mp3": "libmp3lame", "ogg": "libopus"}


@dataclass(frozen=True, slots=True)
class AudioOptions:
    format: str = "mp3"
    bitrate: str = "24k"
    silence_threshold_dbfs: float = -45.0
    silence_window_ms: int = 50
    waveform_points: int = 200


@dataclass(frozen=True, slots=True)
class WavInfo:
    channels: int
    sample_rate: int
    sample_width: int
    data_offset: int
    data_bytes: int

    @property
    def frames(self) -> int:
        return self.data_bytes // (self.channels * self.sample_width)

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True, slots=True)
class AudioResult:
    kind: Literal["audio", "no_audio", "corrupt", "failed"]
    duration_seconds: float = 0.0
    speech_seconds: float = 0.0
    silence_ratio: float = 1.0
    waveform: list[float] = field(default_factory=list)
    output: str | None = None
    size_bytes: int = 0
    sha256: str | None = None
    error: str | None = None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def inspect_wav(path: Path) -> WavInfo:
    """Read the RIFF chunks and check the declared sizes against the file.

    Asterisk writes the header with zero sizes and fixes them when MixMonitor closes the file,
    so a declared size that disagrees with the bytes present means the file was cut short (or
    the PBX died before closing it): such a file is corrupt, not silently shortened.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise CorruptAudio("not a RIFF/WAVE file")
        fmt: tuple[int, int, int, int] | None = None
        pos = 12
        while True:
            f.seek(pos)
            chunk = f.read(8)
            if len(chunk) < 8:
                raise CorruptAudio("no data chunk (file cut short)")
            cid, clen = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            body = pos + 8
            if cid == b"fmt ":
                raw = f.read(16)
                if len(raw) < 16:
                    raise CorruptAudio("fmt chunk cut short")
                tag, channels, rate, _bps, _align, bits = struct.unpack("<HHIIHH", raw)
                if tag not in (1, 0xFFFE) or bits != 16 or channels < 1 or rate <= 0:
                    raise CorruptAudio(f"unsupported WAV format (tag {tag}, {bits} bit)")
                fmt = (tag, channels, rate, bits)
            elif cid == b"data":
                if fmt is None:
                    raise CorruptAudio("data chunk before fmt chunk")
                present = size - body
                if clen > present:
                    raise CorruptAudio(
                        f"truncated: header declares {clen} data bytes, {present} present"
                    )
                if clen == 0 and present > 0:
                    raise CorruptAudio(
                        f"header never finalised: 0 data bytes declared, {present} present"
                    )
                width = fmt[3] // 8
                if clen % (width * fmt[1]):
                    raise CorruptAudio("data ends in the middle of a sample")
                return WavInfo(fmt[1], fmt[2], width, body, clen)
            pos = body + clen + (clen & 1)


def _analyse(seg: AudioSegment, opts: AudioOptions) -> tuple[float, float, list[float]]:
    """Speech seconds, share of silence, and `waveform_points` peaks in 0..1.

    Works on the raw samples with audioop (pydub's own C helpers) over memoryview slices:
    slicing AudioSegments per window would cost as much as a tenth of the transcode.
    """
    width = seg.sample_width
    data = memoryview(seg.raw_data)
    frames = len(data) // width
    if frames == 0:
        return 0.0, 1.0, []
    full_scale = float(1 << (8 * width - 1))
    threshold = full_scale * math.pow(10.0, opts.silence_threshold_dbfs / 20.0)
    step = max(1, seg.frame_rate * opts.silence_window_ms // 1000) * width
    loud_bytes = 0
    for start in range(0, len(data), step):
        piece = data[start : start + step]
        if audioop.rms(piece, width) >= threshold:
            loud_bytes += len(piece)
    points = min(opts.waveform_points, frames)
    peaks: list[float] = []
    for i in range(points):
        a = i * frames // points
        b = max(a + 1, (i + 1) * frames // points)
        peaks.append(round(audioop.max(data[a * width : b * width], width) / full_scale, 3))
    speech = loud_bytes / width / seg.frame_rate
    return speech, round(1.0 - loud_bytes / len(data), 4), peaks


def transcode(seg: AudioSegment, out: Path, opts: AudioOptions) -> None:
    codec = _CODECS.get(opts.format)
    if codec is None:
        raise ValueError(f"unknown format {opts.format!r}")
    # -threads 1: the pool already runs one file per core; more threads only contend.
    params = ["-threads", "1", "-ac", "1"]
    seg.export(str(out), format=opts.format, codec=codec, bitrate=opts.bitrate, parameters=params)


def process_wav(src: str, out: str, opts: AudioOptions) -> AudioResult:
    """Validate, analyse and transcode one MixMonitor WAV into `out`."""
    path = Path(src)
    try:
        info = inspect_wav(path)
    except CorruptAudio as exc:
        return AudioResult(kind="corrupt", error=str(exc))
    except OSError as exc:
        return AudioResult(kind="failed", error=f"cannot read {path.name}: {exc}")
    if info.data_bytes == 0:
        return AudioResult(kind="no_audio", error="header only: the call was never bridged")
    try:
        with path.open("rb") as f:
            f.seek(info.data_offset)
            data = f.read(info.data_bytes)
        seg = AudioSegment(
            data=data,
            sample_width=info.sample_width,
            frame_rate=info.sample_rate,
            channels=info.channels,
        )
        if info.channels > 1:
            seg = seg.set_channels(1)
        speech, silence, peaks = _analyse(seg, opts)
        target = Path(out)
        transcode(seg, target, opts)
        return AudioResult(
            kind="audio",
            duration_seconds=round(info.duration, 3),
            speech_seconds=round(speech, 3),
            silence_ratio=silence,
            waveform=peaks,
            output=str(target),
            size_bytes=target.stat().st_size,
            sha256=sha256_file(target),
        )
    except (CouldntEncodeError, subprocess.SubprocessError, OSError, ValueError) as exc:
        return AudioResult(kind="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
    except Exception as exc:  # a worker must survive anything a file can do to it
        return AudioResult(kind="failed", error=f"{type(exc).__name__}: {exc}"[:2000])


def probe_duration(path: Path) -> float:
    """Duration of a compressed file as ffprobe reads it (tests and the integrity check)."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "default=noprint_wrappers=1:nokey=1",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return float(out.stdout.strip())
