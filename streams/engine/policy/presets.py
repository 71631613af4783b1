"""Compliance presets: session limits published by standards bodies, each with its citation.

A policy table names one with ``preset = "..."`` (the loader, :mod:`.load`, resolves it); the
``policy`` command and the compliance report print the citations. Reference data rather than
logic, and checked against the cited text, not against the code: so it lives on its own, where a
change to a figure is a one-file diff with nothing else in it. It depends on nothing else in the
package.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRESETS", "Preset"]


@dataclass(frozen=True, slots=True)
class Preset:
    """Published session limits (seconds; ``None`` = the source sets none) and where they come from."""

    idle: float | None
    absolute: float | None
    citation: str


PRESETS: dict[str, Preset] = {
    "nist-800-63b-aal1": Preset(None, 30 * 86400.0,
        "NIST SP 800-63B (rev. 3, 2017) §4.1.3: AAL1 reauthentication at least once per 30 days"),
    "nist-800-63b-aal2": Preset(1800.0, 12 * 3600.0,
        "NIST SP 800-63B (rev. 3, 2017) §4.2.3: AAL2 reauthentication every 12 hours and after 30 minutes of inactivity"),
    "nist-800-63b-aal3": Preset(900.0, 12 * 3600.0,
        "NIST SP 800-63B (rev. 3, 2017) §4.3.3: AAL3 reauthentication every 12 hours and after 15 minutes of inactivity"),
    "nist-800-63b-4-aal2": Preset(3600.0, 24 * 3600.0,
        "NIST SP 800-63B-4 (2025), AAL2 reauthentication: every 24 hours, inactivity timeout 1 hour"),
    "nist-800-63b-4-aal3": Preset(900.0, 12 * 3600.0,
        "NIST SP 800-63B-4 (2025), AAL3 reauthentication: every 12 hours, inactivity timeout 15 minutes"),
    "pci-dss-4": Preset(900.0, None,
        "PCI DSS v4.0 requirement 8.2.8: re-authenticate after more than 15 minutes of session idle time"),
    "psd2": Preset(300.0, None,
        "Commission Delegated Regulation (EU) 2018/389 (PSD2 RTS on SCA), Art. 4(3)(d): no activity for more than 5 minutes"),
    "owasp-high-value": Preset(300.0, None,
        "OWASP Session Management Cheat Sheet, Session Expiration: 2-5 minutes idle for high-value applications"),
    "owasp-low-risk": Preset(1800.0, None,
        "OWASP Session Management Cheat Sheet, Session Expiration: 15-30 minutes idle for low-risk applications"),
}
