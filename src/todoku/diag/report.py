"""The shape of a diagnosis (a list of steps and a verdict), its texts in en/ja, and rendering.

A step is ``ok``, ``warn`` (works, but something should be fixed) or ``fail`` (the first
failure ends the run). Our own explanations live in ``TEXTS``; explanations of what a remote
server replied come from the bounce analyzer (``explain_reply``).
"""

from __future__ import annotations

import json
import string
from dataclasses import asdict, dataclass, field

from todoku.bounce import classify_reply, explain_reason

OK = "ok"
WARN = "warn"
FAIL = "fail"

_MARKS = {OK: "[ ok ]", WARN: "[warn]", FAIL: "[FAIL]"}


@dataclass(frozen=True, slots=True)
class Step:
    name: str  # "syntax", "domain", "mx", "connect", "greeting", "ehlo", "starttls", ...
    status: str  # OK, WARN or FAIL
    detail: str  # what was seen, in one line (remote replies quoted as received)
    cause: str = ""  # plain words: why this is a problem (WARN/FAIL only)
    remedy: str = ""  # plain words: what to do
    reason: str = ""  # the bounce taxonomy word, when a remote reply was classified
    reply_code: int | None = None
    enhanced: str = ""


@dataclass
class Report:
    kind: str  # "address" or "submission"
    target: str
    lang: str
    steps: list[Step] = field(default_factory=list)
    verdict: str = ""

    @property
    def ok(self) -> bool:
        return not any(step.status == FAIL for step in self.steps)

    @property
    def failed_step(self) -> Step | None:
        return next((s for s in self.steps if s.status == FAIL), None)

    def add(self, step: Step) -> Step:
        self.steps.append(step)
        return step

    def set_failed_verdict(self) -> bool:
        """When a step failed, make the verdict name that step, its reason and its remedy.
        True if one did (the caller then leaves the verdict alone)."""
        failed = self.failed_step
        if failed is None:
            return False
        self.verdict = text(
            self.lang,
            "verdict_failed" if failed.reason else "verdict_failed_plain",
            step=step_label(self.lang, failed.name),
            reason=failed.reason,
            remedy=failed.remedy,
        )
        return True

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "target": self.target,
                "ok": self.ok,
                "verdict": self.verdict,
                "failed_step": self.failed_step.name if self.failed_step else None,
                "steps": [asdict(s) for s in self.steps],
            },
            ensure_ascii=False,
        )

    def to_text(self) -> str:
        heading = text(self.lang, f"heading_{self.kind}", target=self.target)
        lines = [heading]
        for step in self.steps:
            lines.append(
                f"  {_MARKS[step.status]} {step_label(self.lang, step.name)}: {step.detail}"
            )
            if step.cause:
                lines.append(f"         {text(self.lang, 'label_cause')}: {step.cause}")
            if step.remedy:
                lines.append(f"         {text(self.lang, 'label_remedy')}: {step.remedy}")
        lines.append(f"{text(self.lang, 'label_verdict')}: {self.verdict}")
        return "\n".join(lines) + "\n"


_STEP_LABELS = {
    "syntax": ("address syntax", "アドレスの形式"),
    "domain": ("domain", "ドメイン"),
    "mx": ("MX records", "MX レコード"),
    "connect": ("connection", "接続"),
    "greeting": ("greeting", "グリーティング"),
    "ehlo": ("EHLO", "EHLO"),
    "starttls": ("STARTTLS", "STARTTLS"),
    "tls": ("TLS", "TLS"),
    "certificate": ("certificate", "証明書"),
    "route": ("route", "経路"),
    "relay": ("relay host", "リレーホスト"),
    "auth": ("AUTH mechanisms", "AUTH 方式"),
    "login": ("login", "ログイン"),
    "mail": ("MAIL FROM", "MAIL FROM"),
    "rcpt": ("RCPT TO", "RCPT TO"),
}


def step_label(lang: str, name: str) -> str:
    en, ja = _STEP_LABELS.get(name, (name, name))
    return ja if lang == "ja" else en


# Each key: (English, Japanese). Placeholders are filled from keyword arguments of ``text``.
TEXTS: dict[str, tuple[str, str]] = {
    "heading_address": (
        "Can mail be delivered to {target} from here?",
        "ここから {target} へメールを配送できるか確認します",
    ),
    "heading_submission": (
        "Checking the sending (SMTP) settings {target}",
        "送信 (SMTP) 設定 {target} を確認します",
    ),
    "label_cause": ("cause", "原因"),
    "label_remedy": ("what to do", "対処"),
    "label_verdict": ("verdict", "結論"),
    # --- address checks
    "syntax_bad": (
        '"{address}" is not a mail address: {why}.',
        "「{address}」はメールアドレスの形式になっていません: {why}。",
    ),
    "syntax_bad_fix": (
        "Check the address for typos: it must look like name@example.com.",
        "アドレスに誤字がないか確認してください。name@example.com の形式である必要があります。",
    ),
    "dns_temporary": (
        "The DNS servers did not answer for {domain} ({detail}).",
        "DNS サーバーが {domain} について応答しませんでした（{detail}）。",
    ),
    "dns_temporary_fix": (
        (
            "Check this machine's network and the [dns] nameservers setting, then try again; "
            "if only this domain fails, its DNS servers are broken and the recipient must fix them."
        ),
        (
            "このマシンのネットワークと [dns] nameservers の設定を確認して再度試してください。"
            "このドメインだけ失敗する場合は相手側の DNS の問題です。"
        ),
    ),
    "mx_loop": (
        (
            "The MX of {domain} points to this server ({host}), but {domain} is not one of "
            "this server's domains: mail would loop back here."
        ),
        (
            "{domain} の MX はこのサーバー ({host}) を指していますが、{domain} はこのサーバーの"
            "ドメインではありません。メールがこのサーバーに戻ってきてしまいます。"
        ),
    ),
    "mx_loop_fix": (
        (
            "Either add {domain} to `domains` in the configuration (if this server should "
            "receive its mail), or correct the MX record of {domain}."
        ),
        (
            "このサーバーで受信すべきなら設定の `domains` に {domain} を加え、"
            "そうでなければ {domain} の MX レコードを直してください。"
        ),
    ),
    "mx_unresolvable": (
        "No mail server (MX) of {domain} has an address: {hosts}.",
        "{domain} のメールサーバー (MX) {hosts} のどれにもアドレスがありません。",
    ),
    "mx_unresolvable_fix": (
        (
            "The recipient's DNS is misconfigured; only they (or their provider) "
            "can fix it. Tell them by another channel."
        ),
        (
            "相手側の DNS の設定誤りです。相手（またはそのプロバイダー）にしか直せないので、"
            "別の手段で知らせてください。"
        ),
    ),
    "connect_timeout_25": (
        (
            "No answer from any mail server of {domain} on port 25 within {timeout} s. "
            "When every server times out on port 25, the usual cause is that your network "
            "provider blocks outgoing port 25 (common on home and mobile connections, "
            "to stop spam from infected computers)."
        ),
        (
            "{domain} のどのメールサーバーからも {timeout} 秒以内にポート 25 で応答が"
            "ありませんでした。すべてがポート 25 でタイムアウトする場合、多くはご利用の"
            "プロバイダーが送信方向のポート 25 を遮断しています（家庭用・モバイル回線で"
            "よく行われる迷惑メール対策 OP25B）。"
        ),
    ),
    "connect_timeout_25_fix": (
        (
            "Send through a submission server instead: your provider's or your mail "
            "host's SMTP server on port 587 (STARTTLS) or 465 (TLS) with your account "
            "name and password (a smarthost), or run todoku on a host where port 25 is open."
        ),
        (
            "代わりにサブミッションサーバー経由で送ってください: プロバイダーや"
            "メールホスティングの SMTP サーバーにポート 587 (STARTTLS) または 465 (TLS) で、"
            "アカウント名とパスワードを使って送る（スマートホスト）か、ポート 25 が"
            "開いているホストで todoku を動かしてください。"
        ),
    ),
    "connect_timeout": (
        (
            "No answer from any mail server of {domain} on port {port} within {timeout} s: "
            "a firewall drops the connection, or the servers are down."
        ),
        (
            "{domain} のどのメールサーバーからもポート {port} で {timeout} 秒以内に応答が"
            "ありません。ファイアウォールで遮断されているか、サーバーが停止しています。"
        ),
    ),
    "connect_timeout_fix": (
        (
            "Check this machine's firewall for outgoing connections; if it is open, "
            "the remote servers are down: todoku keeps retrying queued mail."
        ),
        (
            "このマシンの送信方向のファイアウォールを確認してください。問題がなければ"
            "相手のサーバーの停止です。キューのメールは todoku が再送を続けます。"
        ),
    ),
    "connect_refused": (
        (
            "Every mail server of {domain} refused the connection on port {port}: "
            "nothing is listening there."
        ),
        (
            "{domain} のどのメールサーバーもポート {port} への接続を拒否しました。"
            "そこで待ち受けているものがありません。"
        ),
    ),
    "connect_refused_fix": (
        (
            "The recipient's mail server is down or misconfigured; todoku keeps "
            "retrying queued mail. If it lasts, tell the recipient by another channel."
        ),
        (
            "相手のメールサーバーが停止しているか設定誤りです。キューのメールは todoku が"
            "再送を続けます。長く続くなら別の手段で相手に知らせてください。"
        ),
    ),
    "greeting_timeout": (
        "The connection opened but the server never greeted within {timeout} s.",
        "接続はできましたが、{timeout} 秒以内にサーバーが応答 (グリーティング) しませんでした。",
    ),
    "greeting_timeout_fix": (
        (
            "The remote server is overloaded, or something in between (a firewall or "
            "a provider's port 25 filter) swallows the connection. Try again later; if "
            "it persists, send through a submission server on port 587."
        ),
        (
            "相手サーバーの過負荷か、途中のファイアウォールやプロバイダーのポート 25 "
            "フィルターが通信を止めています。時間をおいて再度試し、続くようなら"
            "ポート 587 のサブミッションサーバー経由で送ってください。"
        ),
    ),
    "other_service": (
        (
            '{remote_mta} greeted as a {service} server ("{detail}"), not as an SMTP '
            "server: this address and port are for reading mail."
        ),
        (
            '{remote_mta} は SMTP ではなく {service} サーバーとして応答しました（"{detail}"）。'
            "このアドレスとポートはメールを読むためのものです。"
        ),
    ),
    "other_service_fix": (
        (
            "The MX record or the configured port points at the wrong service: it must name "
            "the SMTP server (port 25)."
        ),
        (
            "MX レコードか設定したポートが別のサービスを指しています。SMTP サーバー"
            "（ポート 25）を指す必要があります。"
        ),
    ),
    "closed": (
        "The server closed the connection ({detail}).",
        "サーバーが接続を切りました（{detail}）。",
    ),
    "closed_fix": (
        (
            "The remote server refuses us before saying why (often a block list or rate "
            "limit on our address). Try again later."
        ),
        (
            "相手サーバーが理由を告げずに切断しました（多くはこちらのアドレスのブロックリスト"
            "登録や流量制限）。時間をおいて再度試してください。"
        ),
    ),
    "no_starttls": (
        "The server does not offer STARTTLS: mail to it travels unencrypted.",
        "サーバーが STARTTLS を提供していません。メールは暗号化されずに送られます。",
    ),
    "tls_failed": (
        "The TLS handshake failed: {detail}.",
        "TLS ハンドシェイクに失敗しました: {detail}。",
    ),
    "tls_failed_fix": (
        (
            "The remote TLS setup is broken; todoku falls back to an unencrypted "
            "connection for MX delivery, which the remote may refuse."
        ),
        (
            "相手の TLS 設定の問題です。MX への配送では todoku は暗号化なしの接続に"
            "切り替えますが、相手がそれを拒否することがあります。"
        ),
    ),
    "verdict_address_ok": (
        (
            "Mail to {target} can be delivered from here: {mx} accepted the recipient "
            "(no message was sent; a content check after DATA can still refuse a message)."
        ),
        (
            "ここから {target} へ配送できます。{mx} が宛先を受け付けました（メールは送って"
            "いません。本文の検査で後から拒否される可能性はあります）。"
        ),
    ),
    "verdict_failed": (
        'Mail cannot be sent: the check stopped at "{step}" ({reason}). {remedy}',
        "送信できません: 「{step}」の段階で止まりました（{reason}）。{remedy}",
    ),
    "verdict_failed_plain": (
        'Mail cannot be sent: the check stopped at "{step}". {remedy}',
        "送信できません: 「{step}」の段階で止まりました。{remedy}",
    ),
    # --- submission checks
    "sub_bad_target": (
        '"{target}" is not HOST:PORT.',
        "「{target}」は HOST:PORT の形ではありません。",
    ),
    "sub_refused": (
        (
            "Nothing accepts connections on {target}: the port or the server name is wrong, or "
            "the server is down."
        ),
        (
            "{target} で接続を受け付けるものがありません。ポート番号かサーバー名が誤っているか、"
            "サーバーが停止しています。"
        ),
    ),
    "sub_refused_fix": (
        (
            "Mail programs send on port 587 (STARTTLS) or 465 (SSL/TLS); port 25 is for "
            "servers and often blocked. Check the server name and port your provider gives."
        ),
        (
            "メールソフトからの送信はポート 587 (STARTTLS) か 465 (SSL/TLS) を使います。"
            "ポート 25 はサーバー間用で、遮断されていることが多いです。プロバイダーの案内の"
            "サーバー名とポートを確認してください。"
        ),
    ),
    "sub_timeout": (
        (
            "No answer from {target} within {timeout} s: a firewall drops the connection, or the "
            "host name is wrong."
        ),
        (
            "{target} から {timeout} 秒以内に応答がありません。ファイアウォールで遮断されているか、"
            "ホスト名が誤っています。"
        ),
    ),
    "sub_timeout_fix": (
        (
            "Check the outgoing server name and port in the mail program, and that no firewall "
            "blocks outgoing connections to that port."
        ),
        (
            "メールソフトの送信サーバー名とポートを確認し、そのポートへの送信方向の接続を"
            "ファイアウォールが遮断していないか確認してください。"
        ),
    ),
    "sub_unresolved": (
        "The server name {host} cannot be resolved ({detail}).",
        "サーバー名 {host} の名前解決ができません（{detail}）。",
    ),
    "sub_unresolved_fix": (
        "Check the outgoing server name in the mail program for typos.",
        "メールソフトの送信サーバー名に誤字がないか確認してください。",
    ),
    "sub_not_implicit": (
        (
            "The server on {target} does not speak TLS from the start ({detail}): this port "
            "expects STARTTLS or no encryption."
        ),
        (
            "{target} のサーバーは接続直後から TLS を話しません（{detail}）。このポートは "
            "STARTTLS か暗号化なしを想定しています。"
        ),
    ),
    "sub_not_implicit_fix": (
        "Set the connection security to STARTTLS (port 587), or use port 465 for SSL/TLS.",
        "接続の保護を STARTTLS（ポート 587）にするか、SSL/TLS ならポート 465 を使ってください。",
    ),
    "sub_expects_tls": (
        (
            "No greeting within {timeout} s: the server on {target} probably expects TLS from "
            "the start (SSL/TLS, as on port 465)."
        ),
        (
            "{timeout} 秒以内にグリーティングがありません。{target} のサーバーは接続直後からの "
            "TLS（ポート 465 の SSL/TLS）を待っていると思われます。"
        ),
    ),
    "sub_expects_tls_fix": (
        "Set the connection security to SSL/TLS for this port (or use port 587 with STARTTLS).",
        "このポートでは接続の保護を SSL/TLS にしてください（またはポート 587 で STARTTLS）。",
    ),
    "sub_other_service": (
        (
            "The server on {target} is a {service} server, for reading mail (it greeted "
            'with "{detail}"), not an SMTP server for sending it.'
        ),
        (
            "{target} のサーバーはメールを読むための {service} サーバーです（挨拶: "
            '"{detail}"）。送信用の SMTP サーバーではありません。'
        ),
    ),
    "sub_other_service_fix": (
        (
            "In the mail program's outgoing (SMTP) server settings use the submission "
            "port, 587 (STARTTLS) or 465 (SSL/TLS); the {service} port belongs in the "
            "incoming server settings."
        ),
        (
            "メールソフトの送信 (SMTP) サーバー設定ではサブミッションポート 587（STARTTLS）"
            "か 465（SSL/TLS）を使ってください。{service} のポートは受信サーバーの設定用です。"
        ),
    ),
    "sub_silent": (
        (
            "The server on {target} accepted the connection but neither greeted nor answered a TLS "
            "hello ({detail})."
        ),
        (
            "{target} のサーバーは接続を受け付けましたが、グリーティングも TLS の応答も返しません"
            "でした（{detail}）。"
        ),
    ),
    "sub_silent_fix": (
        (
            "Check the port: mail programs send on 587 (STARTTLS) or 465 (SSL/TLS). If it is "
            "right, the server is overloaded or stuck; try again later."
        ),
        (
            "ポート番号を確認してください。メールソフトからの送信は 587（STARTTLS）か 465（SSL/TLS）"
            "です。正しければサーバーが過負荷か停止しています。時間をおいて再度試してください。"
        ),
    ),
    "sub_no_starttls": (
        "The server does not offer STARTTLS, so the password would travel unencrypted.",
        "サーバーが STARTTLS を提供していないため、パスワードが暗号化されずに送られます。",
    ),
    "sub_no_starttls_fix": (
        (
            "Use port 465 with SSL/TLS, or ask the provider for the right port; do not "
            "send passwords without encryption."
        ),
        (
            "ポート 465 と SSL/TLS を使うか、正しいポートをプロバイダーに確認してください。"
            "暗号化なしでパスワードを送らないでください。"
        ),
    ),
    "cert_bad": (
        "The server's certificate is not trusted: {detail}.",
        "サーバーの証明書が信頼できません: {detail}。",
    ),
    "cert_bad_fix": (
        (
            "Mail programs will warn or refuse to connect. The server needs a certificate from a "
            "public CA for the name {host} (e.g. Let's Encrypt); check also that the mail program "
            "uses the server name written in the certificate, not an IP address or another alias."
        ),
        (
            "メールソフトは警告を出すか接続を拒否します。サーバーには {host} の名前で公的な CA "
            "（Let's Encrypt など）の証明書が必要です。メールソフトが証明書に書かれたサーバー名"
            "（IP アドレスや別名ではなく）を使っているかも確認してください。"
        ),
    ),
    "auth_needs_tls": (
        "The server offers no login on an unencrypted connection ({detail}).",
        "暗号化されていない接続ではログインできません（{detail}）。",
    ),
    "auth_needs_tls_fix": (
        "Turn on encryption in the mail program: STARTTLS on port 587 or SSL/TLS on port 465.",
        "メールソフトで暗号化を有効にしてください: ポート 587 なら STARTTLS、465 なら SSL/TLS。",
    ),
    "auth_none": (
        "The server offers no SMTP authentication at all: this is not a submission port.",
        "サーバーが SMTP 認証をまったく提供していません。サブミッション用のポートではありません。",
    ),
    "auth_none_fix": (
        "Use the provider's submission port (587 with STARTTLS, or 465 with SSL/TLS).",
        "プロバイダーのサブミッションポート（587 と STARTTLS、または 465 と SSL/TLS）を使ってください。",
    ),
    "login_bad": (
        "The server refused the account name or password ({detail}).",
        "サーバーがアカウント名またはパスワードを拒否しました（{detail}）。",
    ),
    "login_bad_fix": (
        (
            "Check the account name (often the full mail address) and retype the password in "
            "the mail program's outgoing server settings."
        ),
        (
            "送信サーバー設定のアカウント名（多くはメールアドレス全体）を確認し、パスワードを"
            "入力し直してください。"
        ),
    ),
    "login_temporary": (
        "The server could not check the login now ({detail}).",
        "サーバーが今はログインを確認できませんでした（{detail}）。",
    ),
    "login_temporary_fix": (
        (
            "Wait a few minutes and try again; after many wrong passwords servers lock "
            "the address out for a while."
        ),
        "数分待って再度試してください。パスワードを何度も誤るとしばらくロックされます。",
    ),
    "verdict_submission_ok": (
        (
            "These settings work: login as {user} succeeded and {sender} is accepted as "
            "the sender (no message was sent)."
        ),
        (
            "この設定で送信できます: {user} でログインでき、差出人 {sender} も受け付け"
            "られました（メールは送っていません）。"
        ),
    ),
    # --- through a [[relay]] (diag.relay)
    "relay_block": (
        (
            "Add to the configuration file (then put the password alone in relay.secret, "
            "chmod 600, and restart todoku):\n\n"
            '[[relay]]\ndomains = ["*"]\nhost = "smtp.your-provider.example:587"\n'
            'tls = "starttls"\nuser = "you@your-provider.example"\n'
            'password_file = "relay.secret"\n'
        ),
        (
            "設定ファイルに次を加えてください（パスワードだけを relay.secret に書いて "
            "chmod 600 とし、todoku を再起動）:\n\n"
            '[[relay]]\ndomains = ["*"]\nhost = "smtp.your-provider.example:587"\n'
            'tls = "starttls"\nuser = "you@your-provider.example"\n'
            'password_file = "relay.secret"\n'
        ),
    ),
    "relay_add_domain": (
        "Or add {domain} to the domains of a [[relay]] that can send it.",
        "または、送信できる [[relay]] の domains に {domain} を加えてください。",
    ),
    "relay_unresolved": (
        "The relay host {host} of {key} has no address.",
        "{key} のリレーホスト {host} のアドレスが見つかりません。",
    ),
    "relay_unresolved_fix": (
        "Check {key}.host for typos, and this machine's DNS ([dns] nameservers).",
        "{key}.host の綴りと、このマシンの DNS（[dns] nameservers）を確認してください。",
    ),
    "relay_password": (
        "The password file of {key} cannot be used, so todoku cannot log in to {relay}.",
        "{key} のパスワードファイルが使えないため、{relay} にログインできません。",
    ),
    "relay_password_fix": (
        (
            "Write the password alone on one line of {key}.password_file, readable only "
            "by the user todoku runs as (chmod 600), then run `todoku queue flush`."
        ),
        (
            "{key}.password_file にパスワードだけを 1 行で書き、todoku を動かすユーザー"
            "だけが読めるようにして（chmod 600）、`todoku queue flush` を実行してください。"
        ),
    ),
    "relay_ca": (
        "The CA file of {key} cannot be loaded.",
        "{key} の CA ファイルを読み込めません。",
    ),
    "relay_ca_fix": (
        "Point {key}.ca_file at a PEM file of the CA certificate, or remove the key.",
        "{key}.ca_file を CA 証明書の PEM ファイルにするか、キーを削除してください。",
    ),
    "relay_cert_bad": (
        (
            "The relay's certificate does not prove it is {host}: {detail}. todoku never "
            "sends mail or the password to a relay it cannot verify; mail stays queued."
        ),
        (
            "リレーの証明書が {host} であることを証明していません: {detail}。todoku は"
            "検証できないリレーにメールもパスワードも送りません。メールはキューに残ります。"
        ),
    ),
    "relay_cert_bad_fix": (
        (
            "Use the relay's name exactly as its certificate shows (not an IP address "
            "or another alias) in host; for a private CA set ca_file."
        ),
        (
            "host には証明書に書かれた名前（IP アドレスや別名ではなく）を使ってください。"
            "独自の CA なら ca_file を設定してください。"
        ),
    ),
    "verdict_relay_ok": (
        (
            "Mail to {target} goes through {relay}, and it works: login, sender and "
            "recipient accepted (no message was sent)."
        ),
        (
            "{target} 宛のメールは {relay} 経由で送られ、ログイン・差出人・宛先とも受け付け"
            "られました（メールは送っていません）。"
        ),
    ),
    "verdict_submission_warn": (
        "These settings work, but fix the warning above: {cause}",
        "この設定で送信できますが、上の警告を直してください: {cause}",
    ),
}


class _Missing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def text(lang: str, key: str, **facts: object) -> str:
    en, ja = TEXTS[key]
    template = ja if lang == "ja" else en
    return string.Formatter().vformat(template, (), _Missing({k: str(v) for k, v in facts.items()}))


def reply_step(
    name: str, lang: str, code: int | None, enhanced: str, reply_text: str, phase: str, **facts: str
) -> Step:
    """A failed step whose cause is what a remote server replied, explained by the bounce analyzer."""
    reason = classify_reply(code, enhanced, reply_text, phase)
    cause, remedy = explain_reason(reason, lang, **facts)
    shown = " ".join(str(part) for part in (code, enhanced, reply_text.replace("\n", " ")) if part)
    return Step(name, FAIL, shown, cause, remedy, reason, code, enhanced)
