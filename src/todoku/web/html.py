"""HTML for the admin pages: every value escaped unless it is already markup, and the page frame.

Pages are built from ``string.Template`` texts with ``h(template, name=value, ...)``: each value
is escaped with ``html.escape`` (quotes included, so it is safe inside attribute values too)
unless it is ``Markup``, which only ``h`` and ``esc`` make. Text a peer or a sender wrote (a
sender address, a remote reply, a subject) therefore reaches the page as text, never as markup;
there is no other way to put a value into a page here.

The page language (en or ja) comes from a ``?lang=`` switch, remembered in a cookie, else from
the browser's Accept-Language (``choose_lang``).
"""

from __future__ import annotations

import html
import string
from collections.abc import Iterable, Mapping

LANGS = ("en", "ja")
LANG_COOKIE = "todoku-lang"
MAX_ACCEPT_LANGUAGE = 512  # octets of Accept-Language looked at; the rest is ignored


class Markup(str):
    """Text that is HTML already (made by ``h`` or ``esc``): inserted as it is."""

    __slots__ = ()


def esc(value: object) -> Markup:
    """``value`` as HTML text. Markup stays as it is; an iterable of parts (not a string) is
    joined, each part escaped; None is empty."""
    if isinstance(value, Markup):
        return value
    if value is None:
        return Markup("")
    if isinstance(value, str):
        return Markup(html.escape(value, quote=True))
    if isinstance(value, Iterable):
        return Markup("".join(esc(part) for part in value))
    return Markup(html.escape(str(value), quote=True))


def h(template: str, /, **values: object) -> Markup:
    """``template`` (a ``string.Template`` text) with every ``$name`` replaced by the escaped
    value. A missing name raises KeyError: a page never shows a placeholder."""
    return Markup(string.Template(template).substitute({k: esc(v) for k, v in values.items()}))


def choose_lang(query_lang: str | None, cookie: str | None, accept_language: str) -> str:
    """The page language: the switch, else the remembered choice, else the browser's first
    supported language by quality (RFC 9110 §12.5.4), else English."""
    for given in (query_lang, cookie):
        if given in LANGS:
            return given
    best: tuple[float, int, str] | None = None
    for index, item in enumerate(accept_language[:MAX_ACCEPT_LANGUAGE].split(",")[:32]):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().partition("-")[0]
        if primary not in LANGS:
            continue
        quality = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                continue
        if quality <= 0:
            continue
        key = (-quality, index, primary)
        if best is None or key < best:
            best = key
    return best[2] if best is not None else "en"


# ------------------------------------------------------------------------ words of the pages

WORDS: Mapping[str, tuple[str, str]] = {
    "queue": ("Queue", "キュー"),
    "deliverability": ("Deliverability", "到達性"),
    "users": ("Users", "ユーザー"),
    "logout": ("Log out", "ログアウト"),
    "login": ("Log in", "ログイン"),
    "address": ("Address", "アドレス"),
    "password": ("Password", "パスワード"),
    "age": ("Age", "経過"),
    "sender": ("Sender", "差出人"),
    "recipients": ("Recipients", "宛先"),
    "state": ("State", "状態"),
    "next_try": ("Next try", "次の再送"),
    "last_reply": ("Last reply", "最後の応答"),
    "reason": ("Reason", "理由"),
    "actions": ("Actions", "操作"),
    "domain": ("Domain", "ドメイン"),
    "filter": ("Filter", "絞り込む"),
    "any": ("any", "すべて"),
    "retry": ("Retry now", "今すぐ再送"),
    "hold": ("Hold", "保留"),
    "release": ("Release", "保留解除"),
    "delete": ("Delete", "削除"),
    "bounce": ("Return to sender", "差出人に返送"),
    "confirm": ("Confirm", "確認"),
    "cancel": ("Cancel", "やめる"),
    "held": ("held", "保留中"),
    "deferred": ("deferred", "再送待ち"),
    "waiting": ("waiting", "送信待ち"),
    "finishing": ("reporting", "通知中"),
    "empty_queue": ("The queue is empty: nothing is waiting.", "キューは空です。"),
    "no_match": ("No message matches these filters.", "条件に合うメールはありません。"),
    "story": ("Message", "メール"),
    "attempts": ("Attempts", "配送の試み"),
    "time": ("Time", "時刻"),
    "recipient": ("Recipient", "宛先"),
    "route": ("Route", "経路"),
    "remote_host": ("Remote host", "相手サーバー"),
    "phase": ("Phase", "段階"),
    "reply": ("Reply", "応答"),
    "no_attempts": ("Not tried yet.", "まだ送信を試みていません。"),
    "explanation": ("What happened", "何が起きたか"),
    "what_next": ("What todoku does next", "todoku がこれからすること"),
    "header": ("Header", "ヘッダー"),
    "received": ("Received", "受付"),
    "size": ("Size", "サイズ"),
    "records": ("DNS records to publish", "公開する DNS レコード"),
    "checks": ("Published records", "公開済みのレコード"),
    "copy": ("Copy", "コピー"),
    "name": ("Name", "名前"),
    "type": ("Type", "種類"),
    "value": ("Value", "値"),
    "note": ("Note", "説明"),
    "status": ("Status", "状態"),
    "dkim_keys": ("DKIM keys", "DKIM 鍵"),
    "blocklists": ("Blocklists", "ブロックリスト"),
    "chart": ("Outbound results, last 30 days", "送信結果（過去 30 日）"),
    "admin": ("Administrator", "管理者"),
    "created": ("Created", "作成日"),
    "add_user": ("Add a user", "ユーザーを追加"),
    "new_password": ("New password", "新しいパスワード"),
    "set_password": ("Set password", "パスワードを設定"),
    "make_admin": ("Make administrator", "管理者にする"),
    "remove_admin": ("Remove administrator", "管理者から外す"),
    "yes": ("yes", "はい"),
    "no": ("no", "いいえ"),
    "language": ("日本語", "English"),
    "account": ("My account", "アカウント"),
    "mail_settings": ("Settings for your mail program", "メールソフトの設定"),
    "incoming": ("Incoming mail (POP3)", "受信（POP3）"),
    "outgoing": ("Outgoing mail (SMTP)", "送信（SMTP）"),
    "server": ("Server", "サーバー"),
    "port": ("Port", "ポート"),
    "security": ("Security", "暗号化"),
    "username": ("User name", "ユーザー名"),
    "change_password": ("Change your password", "パスワードの変更"),
    "current_password": ("Current password", "現在のパスワード"),
    "again": ("New password again", "新しいパスワード（確認）"),
    "profile": (
        "Set up an iPhone, iPad or Mac: download this profile (it holds no password)",
        "iPhone・iPad・Mac の設定: このプロファイルをダウンロード（パスワードは含みません）",
    ),
}


def t(lang: str, key: str) -> str:
    en, ja = WORDS[key]
    return ja if lang == "ja" else en


# ------------------------------------------------------------------------ the page frame

# Pages in the navigation, in order: (path, word). Received DMARC aggregate and TLS-RPT
# reports get their place here, between deliverability and users, when their parsers land.
NAV: tuple[tuple[str, str], ...] = (
    ("/admin/queue", "queue"),
    ("/admin/deliverability", "deliverability"),
    ("/admin/users", "users"),
    ("/account", "account"),
)
USER_NAV: tuple[tuple[str, str], ...] = (("/account", "account"),)  # a user who is no admin

PAGE = """<!DOCTYPE html>
<html lang="$lang">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>$title · todoku</title>
<link rel="stylesheet" href="/admin/static/admin.css">
<script src="/admin/static/admin.js" defer></script>
</head>
<body>
$header
<main>
<h1>$title</h1>
$notice
$body
</main>
</body>
</html>
"""

HEADER = """<header>
<span class="brand">todoku · $host</span>
<nav>$links</nav>
<span class="who">$user
<a href="?lang=$other" class="lang">$switch</a>
<form method="post" action="/admin/logout" class="inline">
<input type="hidden" name="csrf" value="$csrf">
<button type="submit">$logout</button>
</form></span>
</header>"""


def page(
    lang: str,
    title: str,
    body: Markup,
    *,
    host: str,
    user: str | None = None,
    csrf: str = "",
    current: str = "",
    notice: str = "",
    admin: bool = True,
) -> str:
    """A whole page. Without ``user`` (the login page) there is no navigation."""
    header = h(
        """<header>
<span class="brand">todoku · $host</span>
<span class="who"><a href="?lang=$other" class="lang">$switch</a></span>
</header>""",
        host=host,
        other="en" if lang == "ja" else "ja",
        switch=t(lang, "language"),
    )
    if user is not None:
        links = [
            h(
                '<a href="$path"$cls>$word</a>',
                path=path,
                cls=Markup(' class="current"') if path == current else Markup(""),
                word=t(lang, word),
            )
            for path, word in (NAV if admin else USER_NAV)
        ]
        header = h(
            HEADER,
            host=host,
            links=links,
            user=user,
            other="en" if lang == "ja" else "ja",
            switch=t(lang, "language"),
            csrf=csrf,
            logout=t(lang, "logout"),
        )
    notice_html = h('<p class="notice" role="status">$text</p>', text=notice) if notice else ""
    return h(PAGE, lang=lang, title=title, header=header, notice=notice_html, body=body)
