"""Durations in words for people: reports (how long a message has waited, how long we keep
trying) and the queue's log lines. Here in ``dsn`` since the reports are its text; the queue
imports it (``queue.schedule`` re-exports it), never the other way round."""

from __future__ import annotations


def describe_duration(seconds: float, lang: str = "en") -> str:
    """ "4 hours", "5 days", "2 seconds" (ja: "4時間", "5日")."""
    units = (
        (86400, "day", "日"),
        (3600, "hour", "時間"),
        (60, "minute", "分"),
        (1, "second", "秒"),
    )
    seconds = max(0.0, seconds)
    for size, en, ja in units:
        if seconds >= size or size == 1:
            value = seconds / size
            number = (
                f"{value:.0f}"
                if abs(value - round(value)) < 0.05 or value >= 10
                else f"{value:.1f}"
            )
            if lang == "ja":
                return f"{number}{ja}"
            return f"{number} {en}{'' if number == '1' else 's'}"
    return f"{seconds:.0f} seconds"  # pragma: no cover
