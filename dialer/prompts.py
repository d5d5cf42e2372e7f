"""The recorded prompts the dialer's calls play: one name per prompt, used by the campaign
defaults, the simulator, the example dialplan (docker/asterisk/extensions.conf, checked by
tests/test_prompts.py) and docs/asterisk.md.

A name is what `Playback()`/`Read()` take: `custom/<file>` without an extension. The words of
each prompt are kept in `docker/asterisk/sounds/<file>.txt` (Chinese); `make prompts` turns
them into 8 kHz mono WAVs with espeak-ng and sox, and docker/compose.yaml mounts that folder
as Asterisk's `sounds/custom`. A prompt missing on the PBX makes `Playback` fail at once
(`PLAYBACKSTATUS=FAILED`): the call tracker then reports the call as failed, not reached.
"""

from __future__ import annotations

from pathlib import PurePosixPath

FOLDER = "custom"  # under Asterisk's sounds directory

RENEWAL_REMINDER = f"{FOLDER}/renewal-reminder"  # the reminder campaign's default message
UNDERWRITING_CALLBACK = f"{FOLDER}/underwriting-callback"
IF_CORRECT_PRESS_1_ELSE_2 = f"{FOLDER}/if-correct-press-1-else-2"
THANK_YOU_GOODBYE = f"{FOLDER}/thank-you-goodbye"
CONNECTING_YOU = f"{FOLDER}/connecting-you"
A_SPECIALIST_WILL_CALL_YOU = f"{FOLDER}/a-specialist-will-call-you"
RENEWAL_SORRY = f"{FOLDER}/renewal-sorry"
# A pooled campaign's abandoned call (no free specialist within 2 s): names the caller.
POOL_SORRY = f"{FOLDER}/pool-sorry"

# Every prompt, with how long it plays (seconds, as `make prompts` makes it with espeak-ng
# 1.51 at 200 words a minute; the simulator plays them for this long).
SECONDS: dict[str, float] = {
    RENEWAL_REMINDER: 16.6,
    UNDERWRITING_CALLBACK: 7.7,
    IF_CORRECT_PRESS_1_ELSE_2: 5.9,
    THANK_YOU_GOODBYE: 1.4,
    CONNECTING_YOU: 3.5,
    A_SPECIALIST_WILL_CALL_YOU: 4.8,
    RENEWAL_SORRY: 5.3,
    POOL_SORRY: 6.0,  # estimated from the others' rate of speech (no espeak-ng here)
}
ALL: tuple[str, ...] = tuple(SECONDS)


def file_stem(name: str) -> str:
    """`custom/renewal-reminder` -> `renewal-reminder` (the .txt / .wav file name)."""
    return PurePosixPath(name).name
