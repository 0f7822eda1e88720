"""Building and sending email (email alerts). No database here: beatfeeds.services.alerts decides what
to send; this module turns it into a MIME message and hands it to SMTP (or, under
BEATFEEDS_DRY_RUN, to a file in the instance folder)."""

from __future__ import annotations

import smtplib
import ssl
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from beatfeeds.core.errors import ConfigurationError, PermanentPostingError, TransientPostingError
from beatfeeds.core.files import private_dir, write_private
from beatfeeds.core.text import single_line

TIMEOUT = 30  # seconds per SMTP conversation step


def enabled(settings) -> bool:
    """Whether email alerts can be offered (an SMTP server, or dry run)."""
    return bool(settings.smtp_url) or bool(settings.dry_run)


def sender(settings) -> str:
    if settings.mail_from:
        return settings.mail_from
    host = urlsplit(settings.base_url).hostname or "localhost"
    return f"alerts@{host}"


def build(
    settings, *, to: str, subject: str, text: str, html: str, headers: dict[str, str] | None = None
) -> EmailMessage:
    """A multipart/alternative message (plain text first, then HTML). Every header value is
    folded onto one line first: a line break from source text would make the message
    unsendable (or forge a header)."""
    msg = EmailMessage()
    msg["From"] = single_line(sender(settings))
    msg["To"] = single_line(to)
    msg["Subject"] = single_line(subject)
    msg["Date"] = format_datetime(datetime.now(UTC))
    domain = sender(settings).rsplit("@", 1)[-1].strip(" >") or "localhost"
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["Auto-Submitted"] = "auto-generated"
    for name, value in (headers or {}).items():
        msg[name] = single_line(value)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def _parse_url(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigurationError(
            "BEATFEEDS_SMTP_URL must look like smtp://user:password@host:587 "
            "or smtps://user:password@host:465."
        )
    return {
        "tls": parts.scheme == "smtps",
        "host": parts.hostname,
        "port": parts.port or (465 if parts.scheme == "smtps" else 25),
        "user": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }


def send(settings, msg: EmailMessage) -> str:
    """Send one message; returns where it went. TransientPostingError (retry later) or
    PermanentPostingError (the server refused the message or the recipient)."""
    if settings.dry_run:
        folder = private_dir(Path(settings.instance_path) / "mail")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = write_private(folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml", bytes(msg))
        return f"dry run: {path}"
    if not settings.smtp_url:
        raise ConfigurationError("Email alerts need BEATFEEDS_SMTP_URL (or BEATFEEDS_DRY_RUN).")
    cfg = _parse_url(settings.smtp_url)
    try:
        if cfg["tls"]:
            smtp = smtplib.SMTP_SSL(
                cfg["host"], cfg["port"], timeout=TIMEOUT, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(cfg["host"], cfg["port"], timeout=TIMEOUT)
        with smtp:
            smtp.ehlo()
            if not cfg["tls"] and smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if cfg["user"]:
                smtp.login(cfg["user"], cfg["password"] or "")
            refused = smtp.send_message(msg)
    except smtplib.SMTPAuthenticationError as exc:
        raise PermanentPostingError(
            f"The SMTP server refused the user name or password ({exc.smtp_code})."
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        cls = TransientPostingError if all(400 <= c < 500 for c in codes) else PermanentPostingError
        raise cls(
            f"The SMTP server refused the recipient ({', '.join(map(str, codes))})."
        ) from None
    except smtplib.SMTPResponseException as exc:
        cls = TransientPostingError if 400 <= exc.smtp_code < 500 else PermanentPostingError
        raise cls(
            f"The SMTP server answered {exc.smtp_code}: "
            f"{exc.smtp_error.decode(errors='replace')[:200]}"
        ) from None
    except (TimeoutError, smtplib.SMTPException, OSError) as exc:
        raise TransientPostingError(f"Could not reach the SMTP server: {exc}") from None
    if refused:
        raise PermanentPostingError("The SMTP server refused the recipient.")
    return f"smtp: {cfg['host']}"
