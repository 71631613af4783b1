"""Every session id a request could be taken to carry, as any downstream parser might read it.

A gateway and the app behind it parse ``Cookie`` and session headers with different code. If the
middleware checked one reading and the app used another, ``Cookie: sid=decoy; sid=REVOKED``
(Starlette keeps the last ``sid``, a first-match parser the first one) would let a revoked
session through. So the middleware checks *every* reading (the candidates) and refuses the
request if any of them is revoked. A genuine request carries one session id and yields one
candidate; only a request shaped to confuse parsers yields several, and a request yielding more
than ``max_candidates`` is refused outright (:class:`TooManySessionCandidates`) rather than
checked in part.

Readings of a cookie named ``sid`` (matched case-insensitively) in every ``Cookie`` header:

* browsers, Starlette, Django, Go: pairs split on ``;``, ``=`` splits name from value once,
  whitespace around name and value stripped;
* RFC 2965 parsers: ``,`` separates pairs too;
* Python's ``http.cookies``: whitespace separates pairs too, a quoted value may hold ``;``;
* values unquoted the way Python does (``"a\\"b"`` -> ``a"b``, ``\\ooo`` octal escapes), with the
  quotes simply dropped (Go, Node), and percent-decoded (Node, PHP, Java frameworks);
* headers decoded as Latin-1 (the ASGI/Starlette reading) and, when they differ, as UTF-8.

Readings of the session header: each header of that name, each comma-separated member of one
(list-valued header parsers), and all of them joined with ``", "`` (parsers that fold repeated
headers); each with the same value forms.

>>> get = session_from(cookie="sid", header="x-session-id")
>>> get({"headers": [(b"cookie", b"sid=decoy; sid =REVOKED")]})
('decoy', 'REVOKED')
>>> get({"headers": [(b"x-session-id", b"decoy"), (b"cookie", b'sid="REVOKED"')]})
('decoy', '"REVOKED"', 'REVOKED')
>>> get({"headers": [(b"cookie", b"theme=dark sid=REVOKED")]})  # http.cookies reads sid=REVOKED
('REVOKED',)
>>> get({"headers": [(b"cookie", b"theme=dark")]})
()
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any
from urllib.parse import unquote, unquote_plus

from enforce.state import EnforceConfigError
from enforce.wire import MAX_SESSION_CHARS

Scope = MutableMapping[str, Any]
#: What a session getter may return: one id, none, or every id the request could carry.
SessionIds = str | None | Iterable[str]

#: Most distinct session-id candidates one request may yield, and most cookies of the session
#: cookie's name, session headers, or comma-separated members of one: a genuine request has one.
MAX_CANDIDATES = 16
#: Most bytes of ``Cookie`` header values per request (all headers together): what nginx,
#: Apache and gunicorn accept in one header line by default; browsers send at most 4 KiB per
#: cookie. The cap also bounds the work spent on a hostile header.
MAX_COOKIE_BYTES = 8 * 1024
# Percent-decoding shrinks a string at most 12-fold ("%F0%9F%98%80" is one character), the
# other decodings less: a value longer than this many session ids cannot decode to one.
_MAX_SHRINK = 12

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Python's http.cookies._unquote, as one linear-time substitution (that function loops over
# two regex searches per escape: quadratic on long runs of backslashes).
_ESCAPE = re.compile(r"\\(?:([0-3][0-7][0-7])|(.))")
# A quoted cookie value as http.cookies reads it (it may hold ';').
_QUOTED = re.compile(r'"(?:[^\\"]|\\.)*"')
# An unquoted cookie value as http.cookies delimits it (its own charset is narrower: a superset
# only adds candidates).
_UNQUOTED = re.compile(r"[^\s;]*")
_TO_COMMA = re.compile(r"[^;,]*")
_WHITESPACE = re.compile(r"\s*")
# A value no parser reads differently: nothing to strip, split, unquote or percent-decode.
# (The fast path for genuine requests; everything else takes the exhaustive one.)
_PLAIN = re.compile(r'[^\s"\\%+,;]*')


class SessionCandidatesError(ValueError):
    """The request's session ids cannot all be checked: it is refused. ``status`` and ``error``
    are the HTTP answer (status code, JSON ``error``)."""

    status = 400
    error = "bad_session_candidates"


class TooManySessionCandidates(SessionCandidatesError):
    """More distinct session-id candidates than the configured maximum."""

    status = 400
    error = "too_many_session_candidates"


class CookieHeaderTooLarge(SessionCandidatesError):
    """The ``Cookie`` headers together exceed the configured maximum size."""

    status = 431  # Request Header Fields Too Large (RFC 6585)
    error = "cookie_too_large"


def python_unquote(value: str) -> str:
    """Unquote a cookie value exactly as Python's ``http.cookies`` (and so Starlette) does.

    >>> python_unquote('"a\\\\"b\\\\101"')
    'a"bA'
    >>> python_unquote('plain')
    'plain'
    """
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    inner = value[1:-1]
    if "\\" not in inner:
        return inner
    return _ESCAPE.sub(lambda m: chr(int(m[1], 8)) if m[1] else m[2], inner)


def _percent_decodings(f: str, limit: int) -> Iterator[str]:
    e = f.count("%")
    if len(f) - 3 * e + e // 4 > limit:
        return  # even if every '%' began a 4-byte UTF-8 escape, too long to be a session id
    # URL decoding (Node, Java) and form decoding, where '+' is a space too (PHP)
    for decode in (unquote, unquote_plus) if "+" in f else (unquote,):
        try:
            yield decode(f, errors="strict")
        except UnicodeDecodeError:
            yield decode(f, encoding="latin-1")


def value_forms(value: str, limit: int = MAX_SESSION_CHARS) -> Iterator[str]:
    """Every string of at most ``limit`` characters a parser could make of one raw cookie or
    header value (may repeat). Longer ones cannot name a session lapse enforces.

    >>> sorted(set(value_forms(' "a%41" ')))
    [' "a%41" ', ' "aA" ', '"a%41"', '"aA"', 'a%41', 'aA']
    """
    if len(value) <= limit and _PLAIN.fullmatch(value):
        yield value
        return
    for s in dict.fromkeys((value, value.strip(), value.strip(" \t"))):
        if len(s) > limit * _MAX_SHRINK:
            continue
        forms = [s]
        if len(s) >= 2 and s[0] == s[-1] == '"':
            forms.append(s[1:-1])              # quotes dropped, escapes kept (Go, Node)
            if "\\" in s:
                forms.append(python_unquote(s))  # Python, Starlette, Django
        for f in forms:
            if len(f) <= limit:
                yield f
            if "%" in f or "+" in f:
                for d in _percent_decodings(f, limit):
                    if len(d) <= limit:
                        yield d


def _texts(raw: bytes) -> Iterator[str]:
    """A header value as the ASGI world reads it (Latin-1) and, if that differs, as UTF-8."""
    text = raw.decode("latin-1")
    yield text
    if not raw.isascii():
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            pass


class _CookieName:
    """Finds the cookies called ``name`` (in any case) as each family of parsers delimits them."""

    __slots__ = ("lower", "hit", "hit_any_case")

    def __init__(self, name: str) -> None:
        self.lower = name.lower()
        # the name where some family starts a pair: at the start, or after ';', ',' or whitespace
        # (the literal comes first so the regex engine scans for it at C speed)
        n = re.escape(self.lower)
        self.hit = re.compile(n + r"(?<![^;,\s]" + n + r")\s*=")
        self.hit_any_case = re.compile(n + r"(?<![^;,\s]" + n + r")\s*=", re.IGNORECASE)


def cookie_values(text: str, name: _CookieName, cap: int = MAX_CANDIDATES) -> dict[str, None]:
    """Raw values (before :func:`value_forms`) of every cookie called ``name`` in ``text``:

    * browsers, Starlette, Django, Go: pairs split on ';', the name is what precedes the first
      '=', stripped (so ``sid =x`` is sid), the value is the rest of the pair;
    * RFC 2965 parsers: ',' separates pairs too;
    * http.cookies: whitespace separates pairs too, and a quoted value may hold ';'.

    More than ``cap`` places where a pair of that name starts raises
    :class:`TooManySessionCandidates`: the work is bounded whatever the header holds.

    >>> list(cookie_values('a=1, sid=x; theme=dark sid="y;z"', _CookieName("sid")))
    ['x', '"y;z"', '"y']
    """
    if text.isascii() or max(text) <= "\xff":
        # Latin-1 lowers character for character (positions carry over), and none of its
        # non-ASCII letters matches an ASCII one in any case: scan the lowered text, fast
        hits = name.hit.finditer(text.lower())
    else:
        # UTF-8 text: let the regex engine match case-insensitively (so "\u017fid" is sid too,
        # as for parsers comparing with simple Unicode case mappings)
        hits = name.hit_any_case.finditer(text)
    out: dict[str, None] = {}
    for i, m in enumerate(hits):
        if i >= cap:
            raise TooManySessionCandidates(f"more than {cap} cookies carry the session cookie's name")
        start, pos = m.start(), m.end()
        before = text[start - 1] if start else ";"
        if before.isspace():
            head = text[:start].rstrip()  # at most cap + 1 times: bounded
            last = head[-1] if head else ";"
        else:
            last = before
        if last == ";":
            end = text.find(";", pos)
            out[text[pos:] if end < 0 else text[pos:end]] = None
        if last in ";,":
            out[_TO_COMMA.match(text, pos).group(0)] = None  # type: ignore[union-attr]  (matches "")
        if before != ",":
            v = _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr]
            if text.startswith('"', v):
                q = _QUOTED.match(text, v)
                if q is not None:
                    out[q.group(0)] = None
            out[_UNQUOTED.match(text, v).group(0)] = None  # type: ignore[union-attr]
    return out


class _Candidates:
    """Distinct non-empty candidates in order of appearance, refusing the one past the cap."""

    __slots__ = ("cap", "seen")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.seen: dict[str, None] = {}

    def add_all(self, values: Iterable[str]) -> None:
        seen = self.seen
        for v in values:
            if v and v not in seen:
                if len(seen) >= self.cap:
                    raise TooManySessionCandidates(
                        f"the request carries more than {self.cap} distinct session ids")
                seen[v] = None


class _Checked(tuple):  # type: ignore[type-arg]
    """Candidates :func:`session_from` already made distinct, non-empty and capped."""

    __slots__ = ()


def normalize(got: object, cap: int = MAX_CANDIDATES) -> tuple[str, ...]:
    """A session getter's answer (``str``, ``None`` or an iterable of ``str``) as distinct,
    non-empty candidates; more than ``cap`` raises :class:`TooManySessionCandidates`, anything
    that is not text raises ``TypeError`` (the request fails rather than going unchecked).

    >>> normalize("s1"), normalize(None), normalize(["a", "", "b", "a"])
    (('s1',), (), ('a', 'b'))
    """
    if got is None:
        return ()
    if type(got) is _Checked and len(got) <= cap:
        return got
    if isinstance(got, str):
        return (got,) if got else ()
    if isinstance(got, (bytes, bytearray, memoryview)) or not isinstance(got, Iterable):
        raise TypeError(f"session_getter must return str, None or an iterable of str, not {type(got).__name__}")
    out = _Candidates(cap)
    for v in got:
        if not isinstance(v, str):
            raise TypeError(f"session_getter yielded {type(v).__name__}, not str")
        out.add_all((v,))  # raises on the first id past the cap: an endless iterator stops there
    return tuple(out.seen)


def session_from(
    cookie: str | None = "lapse_session",
    header: str | None = "x-lapse-session",
    *,
    max_candidates: int = MAX_CANDIDATES,
    max_cookie_bytes: int = MAX_COOKIE_BYTES,
) -> Callable[[Scope], tuple[str, ...]]:
    """A session getter returning every session id the request's cookie and/or header could be
    read as (see the module docstring), header readings first.

    Raises :class:`TooManySessionCandidates` past ``max_candidates`` distinct ids and
    :class:`CookieHeaderTooLarge` past ``max_cookie_bytes`` of ``Cookie`` headers.

    >>> session_from(cookie="sid", header=None)({"headers": [(b"cookie", b"a=1"), (b"cookie", b"sid=x")]})
    ('x',)
    """
    if not cookie and not header:
        raise EnforceConfigError("session_from needs a cookie name, a header name, or both")
    if cookie is not None and not _TOKEN.match(cookie):
        raise EnforceConfigError(f"invalid cookie name {cookie!r}")
    if header is not None and not _TOKEN.match(header):
        raise EnforceConfigError(f"invalid header name {header!r}")
    if isinstance(max_candidates, bool) or not isinstance(max_candidates, int) or not 1 <= max_candidates <= 1024:
        raise EnforceConfigError(f"max_candidates must be an integer in 1..1024, not {max_candidates!r}")
    if isinstance(max_cookie_bytes, bool) or not isinstance(max_cookie_bytes, int) or max_cookie_bytes < 256:
        raise EnforceConfigError(f"max_cookie_bytes must be an integer >= 256, not {max_cookie_bytes!r}")
    hname = header.lower().encode("latin-1") if header else None
    cname = _CookieName(cookie) if cookie else None
    too_many = f"more than {max_candidates} session headers or members"

    def get(scope: Scope) -> tuple[str, ...]:
        out = _Candidates(max_candidates)
        hvalues: list[bytes] = []
        cookies: list[bytes] = []
        size = 0
        for k, v in scope.get("headers") or ():
            k = k.lower()
            if k == hname:
                hvalues.append(v)
            if k == b"cookie" and cname is not None:
                size += len(v)
                if size > max_cookie_bytes:
                    raise CookieHeaderTooLarge(f"Cookie headers longer than {max_cookie_bytes} bytes")
                cookies.append(v)
        if hvalues:
            if len(hvalues) > max_candidates:
                raise TooManySessionCandidates(too_many)
            for raw in hvalues:
                if raw.isascii() and len(raw) <= MAX_SESSION_CHARS and _PLAIN.fullmatch(text := raw.decode("ascii")):
                    out.add_all((text,))  # the genuine case: one reading, whatever the parser
                    continue
                for text in _texts(raw):
                    out.add_all(value_forms(text))
                    if "," in text:
                        members = text.split(",")
                        if len(members) > max_candidates:
                            raise TooManySessionCandidates(too_many)
                        for member in members:
                            out.add_all(value_forms(member))
            if len(hvalues) > 1:  # parsers that fold repeated headers into one
                for text in _texts(b", ".join(hvalues)):
                    out.add_all(value_forms(text))
        if cookies:
            assert cname is not None
            for text in _texts(b"; ".join(cookies)):
                for v in cookie_values(text, cname, max_candidates):
                    out.add_all(value_forms(v))
        return _Checked(out.seen)

    return get
