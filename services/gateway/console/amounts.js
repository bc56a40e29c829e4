// Amounts stay decimal strings: differences are worked out exactly with BigInt, never floats.

function scaled(text, places) {
  const negative = text.startsWith("-");
  const [whole, fraction = ""] = (negative ? text.slice(1) : text).split(".");
  const units = BigInt(whole || "0") * 10n ** BigInt(places) + BigInt((fraction + "0".repeat(places)).slice(0, places) || "0");
  return negative ? -units : units;
}

function places(text) {
  const dot = text.indexOf(".");
  return dot < 0 ? 0 : text.length - dot - 1;
}

function shown(units, digits) {
  const negative = units < 0n;
  const text = (negative ? -units : units).toString().padStart(digits + 1, "0");
  const whole = text.slice(0, text.length - digits);
  const fraction = text.slice(text.length - digits).replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${fraction ? "." + fraction : ""}`;
}

/** `a - b` for two decimal strings, exactly. */
export function subtract(a, b) {
  const digits = Math.max(places(a), places(b));
  return shown(scaled(a, digits) - scaled(b, digits), digits);
}

/** `part / whole` in basis points, rounded toward zero; null when `whole` is zero. */
export function basisPoints(part, whole) {
  const digits = Math.max(places(part), places(whole));
  const denominator = scaled(whole, digits);
  if (denominator === 0n) return null;
  return (scaled(part, digits) * 10000n / denominator).toString();
}
