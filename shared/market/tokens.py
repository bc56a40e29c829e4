"""The tokens the simulated market trades.

The established tokens carry their real mainnet mints and decimals. The launch tokens
(PUMP, MEW, POPCAT) are simulated: they exist from genesis but have no pool until one is
launched at run time (`shared.market.launches`); their mints are made up, valid base58
32-byte addresses that start with ``Sim`` so they can never be mistaken for real ones.
"""

from __future__ import annotations

import msgspec

__all__ = ["TOKENS", "Token", "UnknownToken", "get_token"]


class Token(msgspec.Struct, frozen=True, kw_only=True):
    """An SPL token: ``decimals`` says how many base units make one token."""

    symbol: str
    mint: str
    decimals: int
    native: bool = False
    """True only for SOL, which a transaction must wrap into wSOL to swap."""


class UnknownToken(KeyError):
    """A symbol the registry does not list."""

    def __init__(self, symbol: object) -> None:
        super().__init__(symbol)
        self.symbol = symbol

    def __str__(self) -> str:
        known = ", ".join(TOKENS)
        return f"unknown token {self.symbol!r}; known tokens: {known}"


TOKENS: dict[str, Token] = {
    token.symbol: token
    for token in (
        Token(symbol="SOL", mint="So11111111111111111111111111111111111111112", decimals=9, native=True),
        Token(symbol="USDC", mint="EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", decimals=6),
        Token(symbol="USDT", mint="Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB", decimals=6),
        Token(symbol="BONK", mint="DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263", decimals=5),
        Token(symbol="JUP", mint="JUPyiwrYJFskUPiHa7hkeR8VUtAeFoSYbKedZNsDvCN", decimals=6),
        Token(symbol="RAY", mint="4k3Dyjzvzp8eMZWUXbBCjEvwSkkk59S5iCNLY3QrkX6R", decimals=6),
        Token(symbol="WIF", mint="EKpQGSJtjMFqKZ9KQanSqYXRcF8fBopzLHYxdM65zcjm", decimals=6),
        # Simulated launch tokens: no pool at genesis.
        Token(symbol="PUMP", mint="SimPumpMint11111111111111111111111111111111", decimals=6),
        Token(symbol="MEW", mint="SimMewMint111111111111111111111111111111111", decimals=5),
        Token(symbol="POPCAT", mint="SimPopcatMint111111111111111111111111111111", decimals=9),
    )
}
"""Every known token by upper-case symbol."""

_BY_MINT = {token.mint: token for token in TOKENS.values()}


def get_token(symbol: str) -> Token:
    """Look a token up by symbol (any case) or by mint address.

    Raises `UnknownToken` (a `KeyError`) naming the known symbols.
    """
    if isinstance(symbol, str):
        token = TOKENS.get(symbol.strip().upper()) or _BY_MINT.get(symbol.strip())
        if token is not None:
            return token
    raise UnknownToken(symbol)
