// Live quotes per pair and venue: the latest of each venue, then every new one, as a chart
// of each venue's spot price over time and a table of the latest quotes.

import { ApiFailure, call, follow } from "./api.js";
import { add, h, put, s, time } from "./dom.js";

const PAIRS = ["SOL-USDC", "SOL-USDT", "BONK-SOL", "BONK-USDC", "WIF-SOL", "USDC-USDT", "JUP-USDC", "RAY-SOL"];
const COLOURS = ["#1f6feb", "#d9480f", "#2b8a3e", "#862e9c"];
const POINTS = 300; // per venue: the chart shows the most recent
const WIDTH = 760;
const HEIGHT = 300;
const PAD = { left: 90, right: 20, top: 40, bottom: 34 };

/** The chart as an SVG: one line per venue. Prices are numbers here only to place pixels. */
function chart(series) {
  const all = [...series.values()].flat();
  const svg = s("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", id: "quote-chart", role: "img", "aria-label": "spot price by venue" });
  if (!all.length) {
    add(svg, s("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "axis" }, "waiting for quotes…"));
    return svg;
  }
  const t0 = Math.min(...all.map((p) => p.t));
  const t1 = Math.max(Date.now(), ...all.map((p) => p.t));
  let low = Math.min(...all.map((p) => p.price));
  let high = Math.max(...all.map((p) => p.price));
  const margin = (high - low) * 0.1 || Math.abs(high) * 0.001 || 1;
  low -= margin;
  high += margin;
  const x = (t) => PAD.left + (t1 === t0 ? 0.5 : (t - t0) / (t1 - t0)) * (WIDTH - PAD.left - PAD.right);
  const y = (price) => PAD.top + (1 - (price - low) / (high - low)) * (HEIGHT - PAD.top - PAD.bottom);
  add(svg,
    s("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: HEIGHT - PAD.bottom, class: "axis-line" }),
    s("line", { x1: PAD.left, y1: HEIGHT - PAD.bottom, x2: WIDTH - PAD.right, y2: HEIGHT - PAD.bottom, class: "axis-line" }),
    [high - margin, low + margin].map((price) =>
      s("text", { x: PAD.left - 6, y: y(price) + 4, "text-anchor": "end", class: "axis" }, price.toPrecision(6))),
    s("text", { x: PAD.left, y: HEIGHT - 10, class: "axis" }, new Date(t0).toLocaleTimeString([], { hour12: false })),
    s("text", { x: WIDTH - PAD.right, y: HEIGHT - 10, "text-anchor": "end", class: "axis" }, new Date(t1).toLocaleTimeString([], { hour12: false })));
  [...series].forEach(([venue, points], index) => {
    const colour = COLOURS[index % COLOURS.length];
    // A price holds until the next quote: steps, carried on to now.
    const steps = points.flatMap((p, i) => (i ? [[x(p.t), y(points[i - 1].price)], [x(p.t), y(p.price)]] : [[x(p.t), y(p.price)]]));
    steps.push([x(t1), y(points.at(-1).price)]);
    add(svg,
      s("polyline", { points: steps.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" "), stroke: colour, fill: "none", "stroke-width": 2, class: "series", "data-venue": venue, "data-points": points.length }),
      points.map((p) => s("circle", { cx: x(p.t).toFixed(1), cy: y(p.price).toFixed(1), r: 2.5, fill: colour })),
      s("text", { x: PAD.left + 300 * index, y: 22, fill: colour, class: "legend" }, `${venue} ${points.at(-1).text}`));
  });
  return svg;
}

function latestTable(latest) {
  return h("table", { id: "latest-quotes" },
    h("thead", {}, h("tr", {}, ["Venue", "Pool", "Slot", "In", "Out", "Spot price", "Fee", "Impact", "At"].map((name) => h("th", {}, name)))),
    h("tbody", {}, [...latest.values()].map((quote) => h("tr", { "data-venue": quote.venue },
      h("td", {}, quote.venue), h("td", { class: "mono" }, quote.poolId), h("td", {}, quote.slot),
      h("td", { class: "num" }, `${quote.amountIn} ${quote.tokenIn}`), h("td", { class: "num" }, `${quote.amountOut} ${quote.tokenOut}`),
      h("td", { class: "num" }, quote.spotPrice ?? ""), h("td", { class: "num" }, `${quote.fee} ${quote.tokenIn}`),
      h("td", { class: "num" }, `${quote.priceImpactBps} bps`), h("td", {}, time(new Date(quote.timestamp).toISOString()))))));
}

export function quotesView(main, pair, navigate) {
  pair = PAIRS.includes(pair) ? pair : PAIRS[0];
  const series = new Map(); // venue -> [{t, price, text}]
  const latest = new Map(); // venue -> the latest quote
  const picker = h("select", { id: "pair", "aria-label": "pair" }, PAIRS.map((p) => h("option", { value: p, selected: p === pair }, p)));
  picker.addEventListener("change", () => navigate(`#/quotes/${picker.value}`));
  const plot = h("div", { class: "plot" });
  const board = h("div", {});
  const notice = h("p", { class: "problem", role: "alert", hidden: true });
  put(main, h("section", { class: "quotes" },
    h("div", { class: "title" }, h("h1", {}, "Quotes"), picker),
    h("p", { class: "hint" }, "Each venue's spot price for one unit of the base token, live."),
    notice, plot, board));

  function add(quote) {
    if (quote.spotPrice === null || quote.spotPrice === undefined) return;
    const points = series.get(quote.venue) || [];
    if (points.length && quote.timestamp <= points.at(-1).t) return; // the latest again, from both the GET and the stream
    points.push({ t: quote.timestamp, price: Number(quote.spotPrice), text: quote.spotPrice });
    series.set(quote.venue, points.slice(-POINTS));
    latest.set(quote.venue, quote);
  }

  function draw() {
    put(plot, chart(series));
    put(board, latestTable(latest));
  }

  function problem(text) {
    put(notice, text);
    notice.hidden = false;
  }

  call("GET", `/api/quotes?pair=${encodeURIComponent(pair)}`).then((page) => {
    page.quotes.forEach(add);
    draw();
  }, (failure) => problem(failure instanceof ApiFailure ? failure.message : String(failure)));
  draw();
  const stop = follow(`/api/quotes/stream?pair=${encodeURIComponent(pair)}`, (message) => {
    if (message.type === "quote") {
      add(message);
      draw();
    } else if (message.type === "error") {
      problem(message.detail);
    }
  }, (code, reason) => problem(`The quote stream closed (${code}${reason ? `: ${reason}` : ""}).`));
  return () => stop();
}
