"""Pool launches: a pair that gets pools at run time, from a given slot on.

A `PoolLaunch` says which pair launches, on which venues, at what price and depth,
from which slot. It travels as camelCase JSON on ``pools.created.<PAIR>`` (see
`shared.launchlog`), and `Market.add_launch` turns it into a `PairSpec` listed from
``listedAtSlot``: the pair's pools are a pure function of ``(seed, launch, slot)``
like every other pair's, so every replica that knows the launch sees the same pools.

A pair is one unordered pair of tokens: MEW-SOL and SOL-MEW are the same pair, and
whichever is launched first holds it.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Iterable

import msgspec

from shared.amounts import AmountError, format_amount, format_price, parse_amount
from shared.market.config import CpmmSpec, DlmmSpec, PairSpec
from shared.market.cpmm import RAYDIUM_DEFAULT_FEE_PPM
from shared.market.fixed_point import ONE
from shared.market.pools import VENUE_CPMM, VENUE_DLMM, VENUES
from shared.market.tokens import UnknownToken, get_token

__all__ = [
    "DEFAULT_DEPTH_USD",
    "REFERENCE_USD",
    "DlmmParams",
    "LaunchConflict",
    "LaunchError",
    "PoolLaunch",
    "decode_launch",
    "encode_launch",
    "listed_pair",
    "new_launch",
    "parse_pair",
    "parse_venues",
]

_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+")
_VENUE_ALIASES = {
    "raydium": (VENUE_CPMM,),
    "cpmm": (VENUE_CPMM,),
    "meteora": (VENUE_DLMM,),
    "dlmm": (VENUE_DLMM,),
    "both": VENUES,
    **{venue: (venue,) for venue in VENUES},
}

REFERENCE_USD: dict[str, str] = {
    "USDC": "1", "USDT": "1", "SOL": "150", "BONK": "0.00002", "JUP": "0.85", "RAY": "3.3", "WIF": "2",
    "PUMP": "0.004", "MEW": "0.003", "POPCAT": "0.4",
}
"""A rough dollar value per token, used only to default a launch's price and depth."""

DEFAULT_DEPTH_USD = 50_000
"""Default liquidity of each launched pool, in dollars of its quote token."""


class LaunchError(ValueError):
    """A launch that cannot list: unknown token, bad price or depth, unknown venue."""


class LaunchConflict(LaunchError):
    """A launch for a pair the market already lists (at genesis, or from an earlier launch)."""


class DlmmParams(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A launched Meteora pair's parameters; the defaults suit a new volatile token (0.4 % base fee)."""

    bin_step: int = 50
    base_factor: int = 8_000
    variable_fee_control: int = 7_500
    max_volatility_accumulator: int = 150_000
    bins_each_side: int = 70

    def __post_init__(self) -> None:
        if not 1 <= self.bin_step <= 400:
            raise LaunchError(f"dlmm binStep must be 1-400, not {self.bin_step}")
        if min(self.base_factor, self.variable_fee_control, self.max_volatility_accumulator) < 0:
            raise LaunchError("dlmm fee parameters must not be negative")
        if not 1 <= self.bins_each_side <= 500:
            raise LaunchError(f"dlmm binsEachSide must be 1-500, not {self.bins_each_side}")


class PoolLaunch(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Pools for ``base``/``quote`` on ``venues`` from slot ``listed_at_slot`` on.

    ``price`` is quote tokens per base token at the launch (a decimal string); the
    pair's price path starts there. ``depth`` is the liquidity each venue holds at
    that price, in quote tokens: a CPMM pool's quote reserve; a DLMM pair's bins,
    which hold about that much in total. Symbols are canonical (upper case).
    """

    base: str
    quote: str
    venues: tuple[str, ...] = (VENUE_CPMM,)
    price: str
    depth: str
    listed_at_slot: int
    dlmm: DlmmParams | None = None
    """Used when ``meteora-dlmm`` is among the venues; None means `DlmmParams()`."""
    cpmm_fee_ppm: int = RAYDIUM_DEFAULT_FEE_PPM
    volatility_pct: int = 200

    def __post_init__(self) -> None:
        for field, symbol in (("base", self.base), ("quote", self.quote)):
            try:
                canonical = get_token(symbol).symbol
            except UnknownToken as exc:
                raise LaunchError(f"{field}: {exc}") from None
            if canonical != symbol:
                raise LaunchError(f"{field} must be the canonical symbol {canonical!r}, not {symbol!r}")
        if self.base == self.quote:
            raise LaunchError(f"a pair needs two different tokens, not {self.base} twice")
        if not self.venues or len(set(self.venues)) != len(self.venues) or not set(self.venues) <= set(VENUES):
            raise LaunchError(f"venues must be one or both of {', '.join(VENUES)}, not {list(self.venues)}")
        if self.dlmm is not None and VENUE_DLMM not in self.venues:
            raise LaunchError(f"dlmm parameters given but {VENUE_DLMM} is not among the venues")
        if isinstance(self.listed_at_slot, bool) or self.listed_at_slot < 0:
            raise LaunchError(f"listedAtSlot must be a non-negative slot, not {self.listed_at_slot!r}")
        if not 0 <= self.cpmm_fee_ppm < 1_000_000:
            raise LaunchError(f"cpmmFeePpm must be 0-999999, not {self.cpmm_fee_ppm}")
        if not 1 <= self.volatility_pct <= 1_000:
            raise LaunchError(f"volatilityPct must be 1-1000, not {self.volatility_pct}")
        price = _positive_decimal("price", self.price)
        base, quote = get_token(self.base), get_token(self.quote)
        if price * 10**quote.decimals * ONE < 10**base.decimals:
            raise LaunchError(f"price {self.price} {self.quote} per {self.base} is too small to represent")
        depth = _depth_units(self.depth, quote.decimals)
        if VENUE_DLMM in self.venues and depth // (self.dlmm_params().bins_each_side + 1) == 0:
            raise LaunchError(f"depth {self.depth} {self.quote} is too small to spread over the bins")

    @property
    def pair_id(self) -> str:
        """``"BASE-QUOTE"``, e.g. ``"PUMP-USDC"``."""
        return f"{self.base}-{self.quote}"

    @property
    def tokens(self) -> frozenset[str]:
        """The two symbols, unordered: a pair is launched once whichever way round it is named."""
        return frozenset((self.base, self.quote))

    def dlmm_params(self) -> DlmmParams:
        return self.dlmm if self.dlmm is not None else DlmmParams()

    def pair_spec(self) -> PairSpec:
        """The market listing this launch creates."""
        cpmm = dlmm = None
        if VENUE_CPMM in self.venues:
            cpmm = CpmmSpec(depth=self.depth, fee_ppm=self.cpmm_fee_ppm)
        if VENUE_DLMM in self.venues:
            params = self.dlmm_params()
            decimals = get_token(self.quote).decimals
            # The bins taper linearly, so bin_depth * (bins_each_side + 1) is their total value.
            bin_depth = _depth_units(self.depth, decimals) // (params.bins_each_side + 1)
            dlmm = DlmmSpec(
                bin_step=params.bin_step,
                base_factor=params.base_factor,
                variable_fee_control=params.variable_fee_control,
                max_volatility_accumulator=params.max_volatility_accumulator,
                bin_depth=format_amount(bin_depth, decimals),
                bins_each_side=params.bins_each_side,
            )
        return PairSpec(
            base=self.base,
            quote=self.quote,
            price=self.price,
            cpmm=cpmm,
            dlmm=dlmm,
            volatility_pct=self.volatility_pct,
            listed_from_slot=self.listed_at_slot,
        )

    def describe(self) -> str:
        """One line for a person, e.g. ``PUMP-USDC on raydium-cpmm from slot 7: 0.002 USDC per PUMP, ...``."""
        return (
            f"{self.pair_id} on {' and '.join(self.venues)} from slot {self.listed_at_slot}: "
            f"{self.price} {self.quote} per {self.base}, {self.depth} {self.quote} deep per venue"
        )


def new_launch(
    pair: str,
    *,
    listed_at_slot: int,
    price: str | None = None,
    depth: str | None = None,
    venues: str | Iterable[str] = (VENUE_CPMM,),
    dlmm: DlmmParams | None = None,
) -> PoolLaunch:
    """Build a launch from what a person types: any-case ``"pump-usdc"``, optional price and depth.

    A missing price is the ratio of the two tokens' `REFERENCE_USD` values; a missing
    depth is `DEFAULT_DEPTH_USD` worth of the quote token. DLMM parameters are written
    out in full, so the stored launch does not depend on this module's defaults.
    """
    base, quote = parse_pair(pair)
    chosen = parse_venues(venues) if isinstance(venues, str) else parse_venues(",".join(venues))
    if price is None:
        price = _six_digits(_reference_value(quote, Fraction(1)) / _reference_value(base, Fraction(1)))
    if depth is None:
        depth = _six_digits(_reference_value(quote, Fraction(DEFAULT_DEPTH_USD)))
    if VENUE_DLMM in chosen and dlmm is None:
        dlmm = DlmmParams()
    try:
        return PoolLaunch(
            base=base, quote=quote, venues=chosen, price=price, depth=depth, listed_at_slot=listed_at_slot, dlmm=dlmm
        )
    except (TypeError, msgspec.ValidationError) as exc:
        raise LaunchError(str(exc)) from None


def parse_pair(text: str) -> tuple[str, str]:
    """``"pump-usdc"`` -> ``("PUMP", "USDC")``; raises `LaunchError` naming the problem."""
    base, sep, quote = text.strip().partition("-")
    if not sep or not base or not quote or "-" in quote:
        raise LaunchError(f"pair {text!r} must be BASE-QUOTE, e.g. PUMP-USDC")
    try:
        return get_token(base).symbol, get_token(quote).symbol
    except UnknownToken as exc:
        raise LaunchError(f"pair {text!r}: {exc}") from None


def parse_venues(text: str) -> tuple[str, ...]:
    """Venue names or aliases (raydium, meteora, cpmm, dlmm, both) separated by ``,`` or ``/``."""
    chosen: set[str] = set()
    for name in re.split(r"[,/]", text):
        aliases = _VENUE_ALIASES.get(name.strip().lower())
        if aliases is None:
            known = ", ".join(_VENUE_ALIASES)
            raise LaunchError(f"unknown venue {name.strip()!r}; known: {known}")
        chosen.update(aliases)
    return tuple(venue for venue in VENUES if venue in chosen)


def listed_pair(launch: PoolLaunch, pairs: Iterable[PairSpec]) -> PairSpec | None:
    """The pair among ``pairs`` trading the same two tokens as ``launch`` (either way round), if any."""
    for pair in pairs:
        if {pair.base, pair.quote} == launch.tokens:
            return pair
    return None


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(PoolLaunch)


def encode_launch(launch: PoolLaunch) -> bytes:
    """The launch as camelCase JSON, every field written out."""
    return _ENCODER.encode(launch)


def decode_launch(data: bytes) -> PoolLaunch:
    """Parse and check a launch; raises `LaunchError` for anything malformed."""
    try:
        return _DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise LaunchError(f"not a pool launch: {exc}") from None


def _positive_decimal(field: str, text: str) -> Fraction:
    if not isinstance(text, str) or not _DECIMAL.fullmatch(text):
        raise LaunchError(f"{field} {text!r} must be a plain decimal string such as '0.002'")
    value = Fraction(text)
    if value <= 0:
        raise LaunchError(f"{field} must be greater than zero")
    return value


def _depth_units(text: str, decimals: int) -> int:
    _positive_decimal("depth", text)
    try:
        return parse_amount(text, decimals)
    except AmountError as exc:
        raise LaunchError(f"depth {text!r}: {exc}") from None


def _reference_value(symbol: str, dollars: Fraction) -> Fraction:
    try:
        return dollars / Fraction(REFERENCE_USD[symbol])
    except KeyError:
        raise LaunchError(f"no reference price for {symbol}; give the launch a price and a depth") from None


def _six_digits(value: Fraction) -> str:
    return format_price(value.numerator, value.denominator, significant_digits=6)
