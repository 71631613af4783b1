"""OpenID Shared Signals for lapse (``lapse ssf``, reference: docs/ssf.md).

* a **transmitter** (SSF 1.0, CAEP 1.0, CAEP Interoperability Profile): discovery, stream
  management, push (RFC 8935) and poll (RFC 8936) delivery of the revocations topic's SETs,
  re-signed per stream with RS256; durable, ordered per stream (``transmitter``, ``store``,
  ``delivery``, ``model``, ``web``);
* **Back-Channel Logout** 1.0 delivery to registered relying parties (``bcl``);
* a **receiver** of CAEP / RISC SETs from identity providers, mapped to canonical events
  (``receiver``).

It runs as its own process so that it scales on its own, a slow or failing receiver never slows
a decision, and its HTTP surface and credentials stay apart from the worker's.
"""
