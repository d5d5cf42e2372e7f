"""One name per prompt (dialer.prompts), a text for each in the repository, and the WAVs
`make prompts` makes from them (issue 11, finding 5)."""

from __future__ import annotations

import re
import shutil
import subprocess
import wave
from pathlib import Path

import pytest

from callcenter.settings import DialerSettings
from dialer import prompts
from dialer.engine import DialerConfig
from dialer.simulator.pbx import PLAYBACK_SECONDS

ROOT = Path(__file__).resolve().parent.parent
ASTERISK = ROOT / "docker" / "asterisk"
SOUNDS = ASTERISK / "sounds"
_PROMPT = re.compile(r"\b(custom/[A-Za-z0-9_-]+)")


def _dialplan_prompts() -> set[str]:
    text = (ASTERISK / "extensions.conf").read_text(encoding="utf-8")
    code = "\n".join(line.split(";", 1)[0] for line in text.splitlines())
    return set(_PROMPT.findall(code))


def test_every_prompt_the_dialplan_plays_is_a_named_prompt_with_a_text() -> None:
    used = _dialplan_prompts()
    assert prompts.RENEWAL_REMINDER in used  # the reminder extension
    assert used <= set(prompts.ALL)
    for name in used:
        assert (SOUNDS / f"{prompts.file_stem(name)}.txt").is_file(), name


def test_every_named_prompt_has_a_chinese_text_and_a_length() -> None:
    for name in prompts.ALL:
        text = (SOUNDS / f"{prompts.file_stem(name)}.txt").read_text(encoding="utf-8").strip()
        assert re.search(r"[\u4e00-\u9fff]", text), name
        assert PLAYBACK_SECONDS[name] == prompts.SECONDS[name] > 0
    stems = {p.stem for p in SOUNDS.glob("*.txt")}
    assert stems == {prompts.file_stem(n) for n in prompts.ALL}


def test_the_reminder_campaigns_default_message_is_a_shipped_prompt() -> None:
    assert DialerConfig().reminder_message == prompts.RENEWAL_REMINDER
    # The service takes the message from its settings, not from DialerConfig's default.
    assert DialerSettings().reminder_message == prompts.RENEWAL_REMINDER
    assert (SOUNDS / f"{prompts.file_stem(DialerConfig().reminder_message)}.txt").is_file()


def test_the_docs_name_every_prompt() -> None:
    docs = (ROOT / "docs" / "asterisk.md").read_text(encoding="utf-8")
    for name in prompts.ALL:
        assert f"`{name}`" in docs, name


@pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("sox")),
    reason="espeak-ng and sox are not installed (make prompts installs them)",
)
def test_make_prompts_turns_each_text_into_an_8_khz_mono_wav(tmp_path: Path) -> None:
    shutil.copy(SOUNDS / "thank-you-goodbye.txt", tmp_path)
    subprocess.run(
        ["sh", str(ROOT / "scripts" / "make-prompts.sh"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    with wave.open(str(tmp_path / "thank-you-goodbye.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        seconds = w.getnframes() / 8000
    assert seconds == pytest.approx(prompts.SECONDS[prompts.THANK_YOU_GOODBYE], abs=0.3)
