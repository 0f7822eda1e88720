"""Sending email: hands a message to the SMTP server (or, under BEATFEEDS_DRY_RUN, to a file in
the instance folder). No database and no content here: beatfeeds.delivery.messages builds the
message, the email services decide what to send and record the outcome."""

from __future__ import annotations

import smtplib
import ssl
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from beatfeeds.core.errors import ConfigurationError, PermanentPostingError, TransientPostingError
from beatfeeds.core.files import private_dir, write_private

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings

TIMEOUT = 30  # seconds per SMTP conversation step


def enabled(settings: Settings) -> bool:
    """Whether email alerts can be offered (an SMTP server, or dry run)."""
    return bool(settings.smtp_url) or bool(settings.dry_run)


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


def send(settings: Settings, msg: EmailMessage) -> str:
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
