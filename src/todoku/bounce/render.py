"""Diagnoses as text for people (English or Japanese) or as JSON lines for programs.

JSON lines are written here directly, not with the json module: the shape is fixed (strings, one
integer or null, one boolean), so one ``str.translate`` per string does the escaping, and the
json package (its decoder and scanner included) stays out of the command's start-up. The output
is byte for byte what ``json.dumps(..., ensure_ascii=False)`` writes (tests/bounce checks it).
"""

from __future__ import annotations

from todoku.bounce.analyze import Diagnosis

# RFC 8259 §7: quotation mark, reverse solidus and the control characters U+0000-U+001F must be
# escaped; everything else may stay as it is (we write UTF-8).
_JSON_ESCAPES: dict[int, str] = {code: f"\\u{code:04x}" for code in range(0x20)}
_JSON_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r",
                      ord("\t"): "\\t", ord("\b"): "\\b", ord("\f"): "\\f"})


def json_string(text: str) -> str:
    """``text`` as a JSON string literal."""
    return f'"{text.translate(_JSON_ESCAPES)}"'


LABELS = {
    "en": {"recipient": "recipient", "reason": "reason", "status": "status", "reply": "reply",
           "remote": "remote server", "date": "date", "diagnostic": "server said",
           "cause": "cause", "remedy": "what to do", "permanent": "permanent failure",
           "temporary": "temporary, still being retried", "none": "(none named)",
           "notbounce": "not a bounce", "error": "error"},
    "ja": {"recipient": "宛先", "reason": "理由", "status": "状態コード", "reply": "応答コード",
           "remote": "相手サーバー", "date": "日時", "diagnostic": "相手の応答",
           "cause": "原因", "remedy": "対処", "permanent": "恒久的な失敗",
           "temporary": "一時的な失敗（再送中）", "none": "（記載なし）",
           "notbounce": "エラーメールではありません", "error": "エラー"},
}


def as_json(file: str, diagnosis: Diagnosis) -> str:
    """One JSON object with the keys of Diagnosis.to_json, in the same order."""
    d = diagnosis
    reply_code = "null" if d.reply_code is None else str(int(d.reply_code))
    return (
        f'{{"file": {json_string(file)}, "recipient": {json_string(d.recipient)}, '
        f'"reason": {json_string(d.reason)}, "status": {json_string(d.status)}, '
        f'"reply_code": {reply_code}, "remote_mta": {json_string(d.remote_mta)}, '
        f'"diagnostic": {json_string(d.diagnostic)}, '
        f'"permanent": {"true" if d.permanent else "false"}, "date": {json_string(d.date)}, '
        f'"cause": {json_string(d.cause)}, "remedy": {json_string(d.remedy)}}}'
    )


def error_json(file: str, error: str) -> str:
    return f'{{"file": {json_string(file)}, "error": {json_string(error)}}}'


def as_text(file: str, diagnosis: Diagnosis, lang: str) -> str:
    label = LABELS.get(lang, LABELS["en"])
    lines = [f"{file}:"]
    if diagnosis.reason == "notbounce":
        lines.append(f"  {label['notbounce']}")
        return "\n".join(lines)
    nature = label["permanent"] if diagnosis.permanent else label["temporary"]
    if diagnosis.reason in ("delivered", "vacation", "feedback"):
        nature = ""
    lines.append(f"  {label['recipient']}: {diagnosis.recipient or label['none']}"
                 + (f"  ({nature})" if nature else ""))
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
    return "\n".join(lines)


def error_text(file: str, error: str, lang: str) -> str:
    return f"{file}: {LABELS.get(lang, LABELS['en'])['error']}: {error}"
