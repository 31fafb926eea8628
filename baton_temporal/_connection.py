"""What the worker checks before and after connecting to Temporal: TLS settings that agree,
certificate files that exist, and connection errors that name the TLS switch.

The Temporal SDK turns TLS on by itself when ``TEMPORAL_API_KEY`` is present (even
empty) or any ``TEMPORAL_TLS_*`` certificate setting is, and off only for
``TEMPORAL_TLS=false``. A mismatch with the server shows up as a bare transport error
("InvalidContentType", "corrupt message", a reset), so :func:`explain_connect_failure`
says which setting switched TLS on or off and how to flip it.

Example::

    check_tls_files(os.environ)          # TemporalSettingsError naming a missing file
    tls_on, why = tls_state(os.environ)  # (True, "TEMPORAL_API_KEY is set")
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = [
    "TLS_FILE_SETTINGS",
    "TemporalSettingsError",
    "check_tls_files",
    "explain_connect_failure",
    "tls_state",
]

# Each file setting and the variable that gives the same thing inline (a Secret's data).
TLS_FILE_SETTINGS = {
    "TEMPORAL_TLS_CLIENT_CERT_PATH": "TEMPORAL_TLS_CLIENT_CERT_DATA",
    "TEMPORAL_TLS_CLIENT_KEY_PATH": "TEMPORAL_TLS_CLIENT_KEY_DATA",
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH": "TEMPORAL_TLS_SERVER_CA_CERT_DATA",
}
_TLS_MATERIAL = (*TLS_FILE_SETTINGS, *TLS_FILE_SETTINGS.values())
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# Transport errors seen when one side speaks TLS and the other does not.
_TLS_MISMATCH_SIGNS = (
    "InvalidContentType",
    "corrupt message",
    "CorruptMessage",
    "wrong version number",
    "http2 error",
    "frame with invalid size",
    "connection reset",
    "broken pipe",
    "tls handshake eof",
    "peer closed connection",
    "InvalidCertificate",
    "UnknownIssuer",
    "certificate",
)


class TemporalSettingsError(ValueError):
    """The Temporal connection settings contradict each other or name a missing file."""


def tls_state(env: Mapping[str, str]) -> tuple[bool, str]:
    """Whether the SDK will use TLS with these settings, and which setting decided it."""
    explicit = env.get("TEMPORAL_TLS")
    if explicit is not None and explicit.strip().lower() in _FALSE:
        return False, f"TEMPORAL_TLS={explicit}"
    if explicit is not None and explicit.strip().lower() in _TRUE:
        return True, f"TEMPORAL_TLS={explicit}"
    if "TEMPORAL_API_KEY" in env:
        return True, "TEMPORAL_API_KEY is set (an API key turns TLS on)"
    for name in _TLS_MATERIAL:
        if name in env:
            return True, f"{name} is set"
    return False, "no TEMPORAL_TLS, TEMPORAL_API_KEY or TEMPORAL_TLS_* setting is present"


def check_tls_files(env: Mapping[str, str]) -> None:
    """Raise :class:`TemporalSettingsError` for a ``TEMPORAL_TLS_*_PATH`` that names no
    readable file, or for a client certificate without its key (and the reverse)."""
    for path_name, data_name in TLS_FILE_SETTINGS.items():
        path = env.get(path_name)
        if path is None:
            continue
        if data_name in env:
            raise TemporalSettingsError(
                f"both {path_name} and {data_name} are set; keep one (the file path for a "
                "mounted certificate, the data for one given inline from a Secret)"
            )
        if not path or not os.path.isfile(path):
            raise TemporalSettingsError(
                f"{path_name}={path!r} names no file in this container; mount the Secret "
                f"that holds it at that path (a secret volume), or give its PEM contents as "
                f"{data_name} instead (e.g. from the Secret's data with secretKeyRef)"
            )
        if not os.access(path, os.R_OK):
            raise TemporalSettingsError(
                f"{path_name}={path!r} is not readable by this user (uid {os.getuid()}); "
                "give the mounted file mode 0444 or the pod an fsGroup that can read it"
            )
    has_cert = any(n.startswith("TEMPORAL_TLS_CLIENT_CERT_") for n in env)
    has_key = any(n.startswith("TEMPORAL_TLS_CLIENT_KEY_") for n in env)
    if has_cert != has_key:
        missing = "key" if has_cert else "certificate"
        raise TemporalSettingsError(
            f"mTLS needs a client certificate and its key, and the {missing} is missing; set "
            f"TEMPORAL_TLS_CLIENT_{'KEY' if has_cert else 'CERT'}_PATH (or _DATA)"
        )
    tls_on, why = tls_state(env)
    if not tls_on and has_cert:
        raise TemporalSettingsError(
            f"{why} turns TLS off, but a client certificate is set, which only TLS uses; "
            "remove TEMPORAL_TLS (or set it to true) for mTLS, or remove the "
            "TEMPORAL_TLS_CLIENT_* settings for a plaintext server"
        )


def explain_connect_failure(target: str, err: BaseException, env: Mapping[str, str]) -> str:
    """One sentence for a failed ``Client.connect``: what failed, the TLS state and the
    setting behind it, and the fix."""
    text = str(err)
    tls_on, why = tls_state(env)
    state = f"TLS is {'on' if tls_on else 'off'} because {why}"
    mismatch = any(sign.lower() in text.lower() for sign in _TLS_MISMATCH_SIGNS)
    if mismatch and tls_on:
        fix = (
            "if that server is plaintext (a self-hosted frontend without TLS), unset "
            "TEMPORAL_API_KEY and the TEMPORAL_TLS_* settings or set TEMPORAL_TLS=false; if it "
            "does use TLS, check TEMPORAL_TLS_SERVER_CA_CERT_PATH and TEMPORAL_TLS_SERVER_NAME"
        )
    elif mismatch or (not tls_on and "tmprl.cloud" in target):
        fix = (
            "if that server requires TLS (Temporal Cloud, or a frontend with TLS), set "
            "TEMPORAL_TLS=true, or TEMPORAL_API_KEY for Temporal Cloud"
        )
    else:
        fix = (
            "start a server (`baton dev` runs one locally) or set TEMPORAL_ADDRESS to your "
            "cluster's frontend (host:port)"
        )
    return f"cannot reach Temporal at {target} ({text}); {state}; {fix}"
