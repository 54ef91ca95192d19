"""Diagnoses as text for people (English or Japanese) or as JSON lines for programs.

A JSON line is ``{"file": ...}`` followed by every field of Diagnosis in declaration order
(Diagnosis.to_json, from dataclasses.fields), so a field added to Diagnosis appears in
``--json`` without an edit here. The json module (with tomllib and pathlib, which the command
also imports) adds about 20 ms of CPU to a start-up of about 130 ms (medians of 15 runs, shared
machine at load 5); the hand-written encoder that stood here before saved no more than that.
One encoder serves every line: json.dumps(..., ensure_ascii=False) builds a new one per call.

The text output goes to a terminal, and every value in it comes from a file anyone could have
written: control characters (C0, DEL, C1) and the bidirectional controls are shown as backslash
escapes (``\\x1b``, ``\\u202e``), so a hostile bounce cannot move the cursor, recolour the
screen, make a hyperlink or reverse what a line seems to say (issue 12, second attack pass).
JSON escapes them itself.
"""

from __future__ import annotations

import json

from todoku.bounce.analyze import Diagnosis

# What a terminal would act on instead of showing: C0 (but the newline between our own lines),
# DEL, C1, and the Unicode bidirectional embeddings, overrides and isolates.
_UNSHOWABLE = {
    code: (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in [*range(0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F)]
    + [*range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]
}


def _shown(text: str) -> str:
    return text.translate(_UNSHOWABLE)


LABELS = {
    "en": {
        "recipient": "recipient",
        "reason": "reason",
        "status": "status",
        "reply": "reply",
        "remote": "remote server",
        "date": "date",
        "diagnostic": "server said",
        "cause": "cause",
        "remedy": "what to do",
        "failed": "returned: nothing retries it",
        "failed_hard": "returned: sending it again would fail the same way",
        "delayed": "delayed: still being retried",
        "none": "(none named)",
        "notbounce": "not a bounce",
        "error": "error",
    },
    "ja": {
        "recipient": "宛先",
        "reason": "理由",
        "status": "状態コード",
        "reply": "応答コード",
        "remote": "相手サーバー",
        "date": "日時",
        "diagnostic": "相手の応答",
        "cause": "原因",
        "remedy": "対処",
        "failed": "返送済み、再送はされません",
        "failed_hard": "返送済み、同じ内容で送り直しても同じ理由で失敗します",
        "delayed": "遅延中、サーバーが再送を続けています",
        "none": "（記載なし）",
        "notbounce": "エラーメールではありません",
        "error": "エラー",
    },
}


_JSON = json.JSONEncoder(ensure_ascii=False)


def as_json(file: str, diagnosis: Diagnosis) -> str:
    """One JSON object: the file, then the fields of Diagnosis in order (UTF-8, not escaped)."""
    return _JSON.encode(diagnosis.to_json(file))


def error_json(file: str, error: str) -> str:
    return _JSON.encode({"file": file, "error": error})


def as_text(file: str, diagnosis: Diagnosis, lang: str) -> str:
    label = LABELS.get(lang, LABELS["en"])
    lines = [f"{file}:"]
    if diagnosis.reason == "notbounce":
        lines.append(f"  {label['notbounce']}")
        return "\n".join(_shown(line) for line in lines)
    # What happens to the message now, from the report's action (never from the status class):
    # a returned message is not retried, whatever its code says (analyze.py).
    nature = ""
    if diagnosis.reason not in ("delivered", "vacation", "feedback"):
        if diagnosis.action == "failed":
            nature = label["failed_hard"] if diagnosis.hard else label["failed"]
        elif diagnosis.action == "delayed":
            nature = label["delayed"]
    lines.append(
        f"  {label['recipient']}: {diagnosis.recipient or label['none']}"
        + (f"  ({nature})" if nature else "")
    )
    codes = [f"{label['reason']}: {diagnosis.reason}"]
    if diagnosis.status:
        codes.append(f"{label['status']}: {diagnosis.status}")
    if diagnosis.reply_code is not None:
        codes.append(f"{label['reply']}: {diagnosis.reply_code}")
    lines.append("  " + "   ".join(codes))
    if diagnosis.remote_mta:
        lines.append(f"  {label['remote']}: {diagnosis.remote_mta}")
    if diagnosis.date:
        lines.append(f"  {label['date']}: {diagnosis.date}")
    if diagnosis.diagnostic:
        lines.append(f"  {label['diagnostic']}: {diagnosis.diagnostic}")
    lines.append(f"  {label['cause']}: {diagnosis.cause}")
    lines.append(f"  {label['remedy']}: {diagnosis.remedy}")
    return "\n".join(_shown(line) for line in lines)


def error_text(file: str, error: str, lang: str) -> str:
    return _shown(f"{file}: {LABELS.get(lang, LABELS['en'])['error']}: {error}")
