"""Each reason of the taxonomy, defined once, with its plain-words explanation in English and Japanese.

A reason's texts are templates over *facts* the caller knows (recipient, domain, local,
suggestion, lifetime, elapsed, remote_mta, diagnostic, last_error, reporting_mta). A sentence that needs a fact the caller
does not have is left out rather than printed with a hole, so the same definition serves the
outbound queue (which knows everything) and ``todoku explain`` on a pasted bounce (which may know
only a reply line).

A reason's texts say what went wrong and what can be done about it, never whether the message
is still being retried or should be sent again: the same reason comes in a delay warning (the
server keeps trying) and in a returned message (nothing is retried). That is said once, from
the report's own facts, by ``retry_note`` (issue 13 item 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

LANGUAGES = ("en", "ja")


@dataclass(frozen=True, slots=True)
class Text:
    """One language's cause and remedy. ``extra_cause``/``extra_remedy`` map a fact name to a
    sentence that is appended only when that fact is known."""

    cause: str
    remedy: str
    extra_cause: dict[str, str] = field(default_factory=dict)
    extra_remedy: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reason:
    word: str
    permanent: bool  # the usual nature; the bounce's own status code wins when it has one
    summary: str  # a few English words for tables and logs
    en: Text
    ja: Text


def _r(word: str, permanent: bool, summary: str, en: Text, ja: Text) -> Reason:
    return Reason(word, permanent, summary, en, ja)


_TO = {"recipient": " (recipient: {recipient})"}
_TO_JA = {"recipient": "（宛先: {recipient}）"}
_AT = {"remote_mta": " The refusing server was {remote_mta}."}
_AT_JA = {"remote_mta": "拒否したサーバーは {remote_mta} です。"}

_ALL: tuple[Reason, ...] = (
    _r(
        "userunknown",
        True,
        "no such mailbox",
        Text(
            "The part before the @ of the address is wrong: the destination's mail server says no "
            "mailbox of that name exists.",
            "Check the address for typos in the part before the @ (compare it with an address "
            "the recipient has written to you from) and send to the corrected address.",
            extra_cause={
                "recipient": " The address was {recipient}; the domain {domain} exists "
                "and answered, only the name {local} is unknown there."
            },
        ),
        Text(
            "メールアドレスの @ より前の部分が間違っています。相手のメールサーバーは、その名前の"
            "メールボックスは存在しないと答えました。",
            "@ より前の部分に打ち間違いがないか確認し（相手から届いたメールのアドレスと比べると"
            "確実です）、正しいアドレス宛てに送ってください。",
            extra_cause={
                "recipient": "宛先は {recipient} でした。ドメイン {domain} は存在して応答"
                "しましたが、{local} という名前がそこにはありません。"
            },
        ),
    ),
    _r(
        "hostunknown",
        True,
        "no such domain",
        Text(
            "The part after the @ of the address is wrong: the domain does not exist or has no "
            "mail server.",
            "Check the part after the @ for typos and send to the corrected address.",
            extra_cause={"domain": " The domain {domain} could not be found."},
            extra_remedy={"suggestion": " Did you mean {suggestion}?"},
        ),
        Text(
            "メールアドレスの @ より後ろの部分（ドメイン）が間違っています。そのドメインは存在"
            "しないか、メールを受け取るサーバーがありません。",
            "@ より後ろの部分に打ち間違いがないか確認し、正しいアドレス宛てに送ってください。",
            extra_cause={"domain": "ドメイン {domain} が見つかりませんでした。"},
            extra_remedy={"suggestion": "もしかして {suggestion} ではありませんか？"},
        ),
    ),
    _r(
        "mailboxfull",
        False,
        "mailbox full",
        Text(
            "The recipient's mailbox is full, so it cannot take new mail.",
            "Tell the recipient another way (phone, another address) to make room; large "
            "attachments make it worse.",
        ),
        Text(
            "相手のメールボックスが満杯で、新しいメールを受け取れません。",
            "電話や別のアドレスなどで相手に容量を空けてもらうよう伝えてください。大きな添付"
            "ファイルは避けてください。",
        ),
    ),
    _r(
        "mesgtoobig",
        True,
        "message too big",
        Text(
            "The message is larger than the receiving server accepts.",
            "Send the attachments another way (a file-sharing link) or split them into several "
            "smaller messages.",
        ),
        Text(
            "メールのサイズが、相手のサーバーが受け付ける上限を超えています。",
            "添付ファイルはファイル共有のリンクで送るか、いくつかの小さなメールに分けて送って"
            "ください。",
        ),
    ),
    _r(
        "exceedlimit",
        True,
        "over a limit",
        Text(
            "The message goes over a limit of the receiving side (size or number of recipients "
            "allowed for this recipient).",
            "Make the message smaller or send to fewer recipients at a time.",
        ),
        Text(
            "メールが相手側の上限（この宛先に許されたサイズや宛先数）を超えています。",
            "メールを小さくするか、一度に送る宛先の数を減らしてください。",
        ),
    ),
    _r(
        "systemfull",
        False,
        "remote disk full",
        Text(
            "The receiving server's disk or queue is full.",
            "Nothing is wrong on your side. If it keeps happening, tell the recipient's "
            "administrator another way.",
        ),
        Text(
            "相手のメールサーバーのディスクまたはキューが満杯です。",
            "こちら側の問題ではありません。続く場合は別の手段で相手の管理者に知らせてください。",
        ),
    ),
    _r(
        "norelaying",
        True,
        "relay denied",
        Text(
            "The server refused to pass the mail on (relaying denied): it did not know you, "
            "usually because your mail program is not using SMTP authentication.",
            "In your mail program's outgoing (SMTP) settings turn on authentication with your "
            "account name and password, and use port 587 with STARTTLS (or 465 with TLS) instead "
            "of port 25.",
        ),
        Text(
            "サーバーがメールの中継を拒否しました（リレー拒否）。多くの場合、メールソフトが SMTP "
            "認証を使っていないため、サーバーがあなたを利用者と認識できませんでした。",
            "メールソフトの送信（SMTP）サーバー設定で認証をオンにしてアカウント名とパスワードを"
            "入れ、ポートは 25 ではなく 587（STARTTLS）または 465（TLS）を使ってください。",
        ),
    ),
    _r(
        "notaccept",
        True,
        "domain accepts no mail",
        Text(
            "The destination accepts no mail at all (it publishes a null MX or refuses every "
            "message).",
            "The address cannot receive mail; ask the recipient for another address.",
        ),
        Text(
            "宛先のドメインはメールを一切受け付けていません（null MX の公開、または全拒否）。",
            "このアドレスではメールを受け取れません。相手に別のアドレスを聞いてください。",
        ),
    ),
    _r(
        "rejected",
        True,
        "sender refused",
        Text(
            "The receiving server refused the sender address (the MAIL FROM address or its "
            "domain). With a 553 reply this usually means the From address is not one your "
            "account may send as.",
            "Send from the address that belongs to your account (or have it added to your "
            "account), and make sure the sender domain exists and is not blocklisted.",
        ),
        Text(
            "相手のサーバーが送信者アドレス（MAIL FROM のアドレスまたはそのドメイン）を拒否しました。"
            "553 の場合は、差出人（From）アドレスがあなたのアカウントで使えるアドレスではないことが"
            "ほとんどです。",
            "アカウントに属するアドレスから送るか、そのアドレスをアカウントに追加してもらってください。"
            "送信者のドメインが存在し、ブロックリストに載っていないかも確認してください。",
        ),
    ),
    _r(
        "blocked",
        True,
        "sending server blocked",
        Text(
            "The receiving side refused the sending server itself (its IP address or name), "
            "for example because it is on a blocklist or its greeting name is wrong, or, for a "
            "temporary refusal, because it greylists senders it has not seen before.",
            "This is not about the recipient's address. The administrator of the sending server "
            "must check the blocklists and ask for delisting. A temporary block lifts by itself, "
            "and greylisting lets the message through on a later attempt.",
        ),
        Text(
            "受信側が送信サーバーそのもの（IP アドレスやホスト名）を拒否しました。ブロックリストへの"
            "掲載や HELO 名の誤りなどが原因です。一時的な拒否なら、初めての送信元をいったん断る"
            "グレイリスティングの場合もあります。",
            "宛先アドレスの問題ではありません。送信サーバーの管理者がブロックリストを確認し、解除を"
            "依頼する必要があります。一時的なブロックは自然に解除され、グレイリスティングは後の"
            "送信の試みで通ります。",
        ),
    ),
    _r(
        "policyviolation",
        True,
        "remote policy",
        Text(
            "The message was refused under a policy of the receiving site (content, "
            "attachment type, or an organisational rule).",
            "Remove what the policy forbids (often executable or archive attachments, or links) "
            "or ask the recipient to accept it.",
        ),
        Text(
            "受信側のポリシー（内容、添付ファイルの種類、組織の規則など）によりメールが拒否され"
            "ました。",
            "ポリシーに反する部分（実行ファイルや圧縮ファイルの添付、リンクなど）を取り除くか、相手に"
            "受け入れてもらうよう依頼してください。",
        ),
    ),
    _r(
        "securityerror",
        True,
        "security refusal",
        Text(
            "The mail was refused for a security reason, for example authentication was "
            "required, or the login failed.",
            "Check the account name and password in your mail program and that authentication "
            "is turned on.",
        ),
        Text(
            "セキュリティ上の理由で拒否されました（認証が必要、またはログインに失敗など）。",
            "メールソフトのアカウント名とパスワード、認証がオンになっているかを確認してください。",
        ),
    ),
    _r(
        "authfailure",
        True,
        "SPF/DKIM/DMARC failed",
        Text(
            "The receiving side could not verify that the mail really comes from the sender's "
            "domain: an SPF, DKIM or DMARC check failed.",
            "The sender domain's administrator must fix its DNS: list the sending server in the "
            "SPF record, sign with DKIM, and align the From domain with DMARC. Sending through "
            "the domain's own server usually fixes it.",
        ),
        Text(
            "受信側は、メールが本当に送信者のドメインから来たことを確認できませんでした（SPF、DKIM、"
            "DMARC のいずれかの検査に失敗）。",
            "送信者ドメインの管理者が DNS を直す必要があります。送信サーバーを SPF レコードに載せ、"
            "DKIM 署名を行い、From のドメインを DMARC に合わせてください。そのドメインの正規の送信"
            "サーバーから送れば通常は解決します。",
        ),
    ),
    _r(
        "requireptr",
        True,
        "no reverse DNS",
        Text(
            "The sending server's IP address has no reverse DNS (PTR) name, or it does not "
            "match, and the receiving side requires one.",
            "The sending server's administrator must have a PTR record set for its IP address "
            "(usually with the network provider) that matches its host name.",
        ),
        Text(
            "送信サーバーの IP アドレスに逆引き（PTR）レコードがないか一致しておらず、受信側はそれを"
            "必須としています。",
            "送信サーバーの管理者が、IP アドレスに対してホスト名と一致する PTR レコードを（通常は"
            "回線事業者に依頼して）設定する必要があります。",
        ),
    ),
    _r(
        "badreputation",
        False,
        "low sender reputation",
        Text(
            "The receiving side does not trust the sending IP address (low reputation), so "
            "it refused or delayed the mail.",
            "Send less at a time and only to people who asked for it; reputation recovers over "
            "days. The sending server's administrator can check the provider's postmaster pages.",
        ),
        Text(
            "受信側が送信元 IP アドレスを信用していない（評価が低い）ため、拒否または遅延しました。",
            "一度に送る量を減らし、希望した相手にだけ送ってください。評価は数日で回復します。送信"
            "サーバーの管理者は相手のポストマスター向けページを確認できます。",
        ),
    ),
    _r(
        "spamdetected",
        True,
        "judged as spam",
        Text(
            "The receiving side's spam filter judged the message to be spam.",
            "Rewrite the message without spam-like features (many links, URL shorteners, "
            "all-image content, misleading subject), and make sure SPF/DKIM/DMARC pass.",
        ),
        Text(
            "受信側の迷惑メールフィルターが、このメールを迷惑メールと判定しました。",
            "迷惑メールに見える要素（大量のリンク、短縮 URL、画像だけの本文、紛らわしい件名）を"
            "避けて書き直し、SPF/DKIM/DMARC が通ることを確認してください。",
        ),
    ),
    _r(
        "virusdetected",
        True,
        "virus found",
        Text(
            "A virus scanner on the receiving side found malware in the message.",
            "Scan your computer and the attachment for viruses; do not send the file again as is.",
        ),
        Text(
            "受信側のウイルス検査で、メールにマルウェアが見つかりました。",
            "パソコンと添付ファイルをウイルス検査してください。そのファイルをそのまま送り直さないで"
            "ください。",
        ),
    ),
    _r(
        "contenterror",
        True,
        "malformed content",
        Text(
            "The message's header or content encoding is malformed, so the receiving side "
            "refused it.",
            "Send it from a standard mail program; if it was generated by software, that "
            "software must produce valid MIME.",
        ),
        Text(
            "メールのヘッダーまたは本文のエンコードが壊れているため、受信側が拒否しました。",
            "一般的なメールソフトから送ってください。プログラムが作成したメールなら、正しい MIME "
            "を出力するよう修正が必要です。",
        ),
    ),
    _r(
        "notcompliantrfc",
        True,
        "breaks RFC 5322",
        Text(
            "The message breaks the Internet mail format rules (RFC 5322), for example a "
            "duplicate or missing header.",
            "Send it from a standard mail program; software that generated it must be fixed.",
        ),
        Text(
            "メールがインターネットメールの形式（RFC 5322）に違反しています（ヘッダーの重複や欠落など）。",
            "一般的なメールソフトから送ってください。メールを作ったプログラムの修正が必要です。",
        ),
    ),
    _r(
        "filtered",
        True,
        "filtered by recipient",
        Text(
            "The recipient's server accepted the address but then refused the message because "
            "of a filter set by the recipient or the site.",
            "Ask the recipient another way to allow mail from you (add you to their allowed "
            "senders).",
        ),
        Text(
            "相手のサーバーは宛先を受け付けましたが、相手またはサイトが設定したフィルターにより"
            "メールが拒否されました。",
            "別の手段で相手に連絡し、あなたからのメールを受信許可（許可リストへの追加）してもらって"
            "ください。",
        ),
    ),
    _r(
        "expired",
        True,
        "gave up retrying",
        Text(
            "The mail could not be delivered for so long that the sending server gave up: the "
            "destination did not answer or kept refusing temporarily.",
            "Check the address; if it is right, the destination's server was down or "
            "unreachable all that time, so contact the recipient another way.",
            extra_cause={
                "lifetime": " It kept trying for {lifetime} before giving up.",
                "last_error": " The last attempt failed: {last_error}",
            },
        ),
        Text(
            "長い間配送できなかったため、送信サーバーが配送をあきらめました。相手のサーバーが応答"
            "しないか、一時的な拒否を続けました。",
            "アドレスを確認してください。正しければ、相手のサーバーがその間ずっと停止または到達"
            "不能だったので、別の手段で相手に連絡してください。",
            extra_cause={
                "lifetime": "{lifetime} の間再送を続けた後にあきらめました。",
                "last_error": "最後の試みの失敗: {last_error}",
            },
        ),
    ),
    _r(
        "cancelled",
        True,
        "removed by the administrator",
        Text(
            "The message was removed by the administrator of the sending server before it was "
            "delivered: it was taken out of the queue and returned to you.",
            "If you did not expect this, ask the administrator (postmaster) of your mail server "
            "why the message was stopped.",
            extra_cause={"reporting_mta": " The sending server was {reporting_mta}."},
        ),
        Text(
            "送信サーバーの管理者が、配送前にメールを送信キューから取り除き、あなたに返送しました。",
            "心当たりがない場合は、メールサーバーの管理者（ポストマスター）に、送信を止めた理由を"
            "問い合わせてください。",
            extra_cause={"reporting_mta": "送信サーバーは {reporting_mta} です。"},
        ),
    ),
    _r(
        "delayed",
        False,
        "delayed, still trying",
        Text(
            "The mail has not been delivered yet: the receiving side is busy, unreachable or "
            "limiting us for now.",
            "Nothing to do yet: the server keeps trying by itself.",
            extra_cause={"elapsed": " It has been trying for {elapsed}."},
            extra_remedy={
                "lifetime": " It will keep trying until the message is {lifetime} old "
                "and tell you if it gives up."
            },
        ),
        Text(
            "メールはまだ配送されていません。受信側が混雑している、到達できない、または一時的に"
            "制限しています。",
            "今は何もする必要はありません。サーバーが自動で再送を続けます。",
            extra_cause={"elapsed": "再送を始めてから {elapsed} 経過しています。"},
            extra_remedy={
                "lifetime": "メールが送信から {lifetime} 経つまで再送を続け、あきらめた"
                "場合はお知らせします。"
            },
        ),
    ),
    _r(
        "toomanyconn",
        False,
        "rate limited",
        Text(
            "The receiving side limits how many connections or messages it takes from us, and "
            "we went over that limit.",
            "The limit is the receiving side's policy and lifts by itself; send large mailings "
            "in smaller batches.",
        ),
        Text(
            "受信側が受け付ける接続数・メール数を制限しており、その上限を超えました。",
            "制限は相手側のポリシーで、自然に解除されます。一斉送信は小分けにしてください。",
        ),
    ),
    _r(
        "speeding",
        False,
        "sending too fast",
        Text(
            "Mail was sent too fast and went over a rate limit of the receiving side.",
            "The limit lifts by itself; send more slowly.",
        ),
        Text(
            "送信の速度が速すぎて、受信側の速度制限を超えました。",
            "制限は自然に解除されます。送信の間隔をあけてください。",
        ),
    ),
    _r(
        "suspend",
        True,
        "account suspended",
        Text(
            "The recipient's account exists but is suspended, disabled or no longer used.",
            "Contact the recipient another way and ask for an address they use now.",
        ),
        Text(
            "相手のアカウントは存在しますが、停止・無効化されているか、使われていません。",
            "別の手段で相手に連絡し、現在使っているアドレスを聞いてください。",
        ),
    ),
    _r(
        "hasmoved",
        True,
        "address has moved",
        Text(
            "The recipient has moved to another address and mail is not forwarded.",
            "Use the new address given in the bounce, or ask the recipient for it.",
        ),
        Text(
            "相手は別のアドレスに移っており、メールは転送されません。",
            "エラーメールに書かれた新しいアドレスを使うか、相手に新しいアドレスを聞いてください。",
        ),
    ),
    _r(
        "networkerror",
        False,
        "network or DNS trouble",
        Text(
            "The sending server could not reach the destination: a DNS lookup failed, the "
            "connection was refused or timed out, or the mail looped between servers.",
            "A failed lookup or connection may pass by itself; a mail loop, or a failure that "
            "persists, means the destination's DNS or mail server is misconfigured, and its "
            "administrator must fix it.",
        ),
        Text(
            "送信サーバーが相手に到達できませんでした（DNS の検索失敗、接続拒否やタイムアウト、"
            "サーバー間のメールのループ）。",
            "検索や接続の失敗は自然に解消することがあります。メールのループや、失敗が続く場合は"
            "相手の DNS またはメールサーバーの設定誤りで、相手の管理者が直す必要があります。",
        ),
    ),
    _r(
        "systemerror",
        False,
        "remote server error",
        Text(
            "The destination's mail server or DNS is misconfigured or had an internal error.",
            "Nothing is wrong with your message; if it keeps happening, tell the recipient's "
            "administrator another way.",
        ),
        Text(
            "相手のメールサーバーまたは DNS の設定誤り、または内部エラーです。",
            "メールに問題はありません。続く場合は別の手段で相手の管理者に知らせてください。",
        ),
    ),
    _r(
        "mailererror",
        True,
        "delivery program failed",
        Text(
            "The program that delivers mail into the mailbox on the receiving server "
            "(a pipe, procmail, a filter) failed.",
            "Tell the recipient's administrator another way; this is their configuration.",
        ),
        Text(
            "受信サーバーでメールボックスへ配送するプログラム（パイプ、procmail、フィルター）が"
            "失敗しました。",
            "別の手段で相手の管理者に知らせてください。相手側の設定の問題です。",
        ),
    ),
    _r(
        "syntaxerror",
        True,
        "SMTP syntax error",
        Text(
            "An SMTP command sent to the receiving server was not valid.",
            "This is a fault of the sending software; its administrator must fix it.",
        ),
        Text(
            "受信サーバーに送った SMTP コマンドが正しくありませんでした。",
            "送信ソフトの不具合です。管理者が修正する必要があります。",
        ),
    ),
    _r(
        "failedstarttls",
        False,
        "STARTTLS failed",
        Text(
            "The secure connection (STARTTLS) could not be set up: one side requires it and the "
            "other does not offer it, or the TLS handshake failed.",
            "The administrators must fix the TLS setup (certificates, protocol versions).",
        ),
        Text(
            "暗号化接続（STARTTLS）を確立できませんでした。一方が必須とし他方が対応していないか、"
            "TLS のハンドシェイクに失敗しました。",
            "管理者が TLS の設定（証明書、プロトコルのバージョン）を直す必要があります。",
        ),
    ),
    _r(
        "suppressed",
        True,
        "on suppression list",
        Text(
            "The mail was not sent because the address is on the sending service's suppression "
            "list (it bounced or complained before).",
            "Confirm the address is valid now, then remove it from the suppression list.",
        ),
        Text(
            "宛先が送信サービスの配信停止リストに載っているため送信されませんでした（以前のエラーや"
            "苦情による）。",
            "アドレスが現在有効か確認してから、配信停止リストから外してください。",
        ),
    ),
    _r(
        "onhold",
        False,
        "undecided",
        Text(
            "The bounce says too little to decide why delivery failed.",
            "Read what the server said; if it does not make the cause clear, contact the "
            "recipient another way.",
        ),
        Text(
            "エラーメールの情報が少なく、失敗の理由を判断できません。",
            "相手サーバーの応答を読んでください。原因が分からない場合は、別の手段で相手に連絡して"
            "ください。",
        ),
    ),
    _r(
        "undefined",
        False,
        "unknown reason",
        Text(
            "The reason for the failure could not be determined.",
            "Read what the remote server said; if it does not make the cause clear, contact the "
            "recipient another way.",
        ),
        Text(
            "失敗の理由を特定できませんでした。",
            "相手サーバーの応答を読んでください。原因が分からない場合は、別の手段で相手に連絡して"
            "ください。",
        ),
    ),
    _r(
        "delivered",
        False,
        "delivered",
        Text("This is a success report: the message was delivered.", "Nothing to do."),
        Text("配送成功の通知です。メールは届きました。", "何もする必要はありません。"),
    ),
    _r(
        "vacation",
        False,
        "auto-reply",
        Text(
            "This is an automatic reply (out of office), not a failure.",
            "Nothing to do; the message was delivered.",
        ),
        Text(
            "自動応答（不在通知）で、エラーではありません。",
            "何もする必要はありません。メールは届いています。",
        ),
    ),
    _r(
        "feedback",
        False,
        "complaint report",
        Text(
            "This is a feedback (complaint) report: a recipient marked a message as spam or "
            "unwanted.",
            "Stop sending to that recipient and check why they did not want the mail.",
        ),
        Text(
            "苦情（フィードバック）レポートです。受信者がメールを迷惑メールとして報告しました。",
            "その宛先への送信を止め、なぜ望まれなかったかを確認してください。",
        ),
    ),
    _r(
        "notbounce",
        False,
        "not a bounce",
        Text("This message is not a bounce or delivery report.", "Nothing to do."),
        Text("このメールはエラーメールや配送通知ではありません。", "何もする必要はありません。"),
    ),
)

REASONS: dict[str, Reason] = {reason.word: reason for reason in _ALL}

# The everyday words people (and the queue) use, mapped onto the taxonomy.
ALIASES = {"delayed": "delayed", "ratelimited": "toomanyconn", "emailtoolarge": "mesgtoobig"}


class _Facts(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


def _fill(template: str, facts: _Facts) -> str:
    try:
        return template.format_map(facts)  # as string.Formatter would, in C
    except (KeyError, IndexError, ValueError):
        return ""


def _derive(facts: dict[str, str]) -> _Facts:
    out = _Facts({k: v for k, v in facts.items() if v})
    recipient = out.get("recipient", "")
    if "@" in recipient:
        local, _, domain = recipient.rpartition("@")
        out.setdefault("local", local)
        out.setdefault("domain", domain)
    return out


# What the report's action means for the sender, appended to the remedy.
_STILL_RETRYING = {
    "en": " The sending server is still retrying this message by itself: you do not need to "
    "send it again.",
    "ja": "送信サーバーがこのメールの再送を自動で続けています。あなたが送り直す必要はありません。",
}
_RETURNED = {
    "en": " The message was returned and nothing is retrying it.",
    "ja": "メールは返送され、再送はされません。",
}
_FAILS_AGAIN = {
    "en": " Sending it again unchanged would fail the same way.",
    "ja": "同じメールをそのまま送り直しても、同じ理由で失敗します。",
}
_SEND_AGAIN = {
    "en": " Once the cause is gone, send it again yourself.",
    "ja": "原因が解消したら、ご自身で送り直してください。",
}
# Reports that are not about a failure: no retry to speak of.
_NOT_FAILURES = frozenset({"delivered", "vacation", "feedback", "notbounce"})


def retry_note(reason: str, lang: str, action: str, hard: bool | None = None) -> str:
    """What the report's action means for the sender, to follow explain_reason's remedy.

    ``action`` is the report's (RFC 3464 §2.3.3): "delayed" says that the message is still being
    retried and need not be sent again, "failed" that it was returned and nothing retries it;
    ``hard`` (known only with "failed") adds whether sending it again unchanged would fail the
    same way. Empty for any other action, and for reports that are not about a failure.
    """
    language = "ja" if lang == "ja" else "en"
    word = ALIASES.get(reason, reason)
    if word in _NOT_FAILURES or word == "delayed":  # "delayed" says it in its own remedy
        return ""
    if action == "delayed":
        return _STILL_RETRYING[language]
    if action != "failed":
        return ""
    if hard is None:
        return _RETURNED[language]
    return _RETURNED[language] + (_FAILS_AGAIN if hard else _SEND_AGAIN)[language]


def explain_reason(reason: str, lang: str = "en", **facts: str) -> tuple[str, str]:
    """(cause, remedy) in plain words for a reason word; unknown words explain as ``undefined``.

    Neither says whether the message is still being retried: add ``retry_note`` for that.
    """
    definition = REASONS.get(ALIASES.get(reason, reason)) or REASONS["undefined"]
    text = definition.ja if lang == "ja" else definition.en
    known = _derive(facts)
    needs_suggestion = any(
        "suggestion" in t for t in (text.cause, text.remedy, *text.extra_cause, *text.extra_remedy)
    )
    if needs_suggestion and "suggestion" not in known and known.get("domain"):
        # Only the reasons that talk about a mistyped domain pay for the edit-distance search.
        from todoku.bounce.typos import suggest_domain

        suggestion = suggest_domain(known["domain"])
        if suggestion:
            known["suggestion"] = suggestion
    cause = _fill(text.cause, known)
    for fact, sentence in text.extra_cause.items():
        if fact in known:
            cause += _fill(sentence, known)
    remedy = _fill(text.remedy, known)
    for fact, sentence in text.extra_remedy.items():
        if fact in known:
            remedy += _fill(sentence, known)
    return cause, remedy
