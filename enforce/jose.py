"""joserfc registries pinned to one algorithm each.

joserfc warns that "EdDSA" is deprecated by RFC 9864 (it is polymorphic: Ed25519 or Ed448).
lapse only ever binds "EdDSA" to Ed25519 OKP keys (see ``enforce.wire.ALGS_BY_KTY`` and the JWKS
checks in ``enforce.verify``), which is exactly RFC 9864's "Ed25519", so the warning does not
apply; it is silenced here, per registry, instead of with a process-wide warnings filter.
"""

from __future__ import annotations

from functools import cache

from joserfc.jws import JWSRegistry


class _PinnedRegistry(JWSRegistry):
    def get_alg(self, name: str):  # type: ignore[override]
        if name == "EdDSA" and self.allowed and name in self.allowed:
            return self.algorithms[name]
        return super().get_alg(name)


@cache
def registry_for(alg: str) -> JWSRegistry:
    """A JWS registry that accepts exactly ``alg``."""
    return _PinnedRegistry(algorithms=[alg])
