// One order: its live timeline, progress, routing explanation, attempts, and a cancel button.
// Everything below the header is drawn from the order's events as the stream replays and
// then sends them, so the page shows what the log holds, as it happens.

import { basisPoints, subtract } from "./amounts.js";
import { call, follow, TERMINAL } from "./api.js";
import { h, put, statusBadge, time } from "./dom.js";

function table(headings, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headings.map((name) => h("th", {}, name)))),
    h("tbody", {}, rows));
}

function legs(path) {
  return path.legs.map((leg) =>
    `${leg.venue}: ${leg.amountIn} ${leg.tokenIn} → ${leg.amountOut} ${leg.tokenOut} (fee ${leg.fee} ${leg.tokenIn}, impact ${leg.priceImpactBps} bps)`);
}

function routing(route, spec) {
  const out = spec.tokenOut;
  // The chosen route is the candidate with its paths: another may pay exactly as much.
  const chosen = JSON.stringify(route.paths);
  const won = (candidate) => candidate.kind === route.kind && JSON.stringify(candidate.paths) === chosen;
  const candidates = route.candidates.length ? route.candidates : route.quotes.map((quote) => ({
    kind: "direct", description: quote.venue, amountOut: quote.amountOut, fillable: quote.fillable, paths: [],
  }));
  return h("div", { class: "routing" },
    h("dl", { class: "facts" },
      h("dt", {}, "Route"), h("dd", {}, route.kind === "direct" ? `direct on ${route.venue}` : route.kind),
      h("dt", {}, "Expected"), h("dd", {}, `${route.expectedOut} ${out}`),
      h("dt", {}, "Minimum"), h("dd", {}, `${route.minOut} ${out} (slippage ${spec.slippageBps} bps)`),
      h("dt", {}, "Fees"), h("dd", {}, `${route.fee} ${spec.tokenIn}`),
      h("dt", {}, "Price impact"), h("dd", {}, `${route.priceImpactBps} bps`),
      route.gainBps ? [h("dt", {}, "Gain"), h("dd", {}, `+${route.gainBps} bps over the best single venue`)] : null),
    h("h3", {}, "Every route considered"),
    table(["", "Kind", "Route", "Output", "Fillable"], candidates.map((candidate) =>
      h("tr", { class: won(candidate) ? "winner" : "" },
        h("td", {}, won(candidate) ? "✓" : ""),
        h("td", {}, candidate.kind),
        h("td", {}, candidate.description),
        h("td", { class: "num" }, `${candidate.amountOut} ${out}`),
        h("td", {}, candidate.fillable ? "yes" : "no"))), { class: "candidates" }),
    h("h3", {}, "Venue quotes"),
    table(["Venue", "Pool", "Output", "Fee", "Impact"], route.quotes.map((quote) =>
      h("tr", {},
        h("td", {}, quote.venue), h("td", { class: "mono" }, quote.poolId),
        h("td", { class: "num" }, `${quote.amountOut} ${out}`), h("td", { class: "num" }, `${quote.fee} ${spec.tokenIn}`),
        h("td", { class: "num" }, `${quote.priceImpactBps} bps`)))),
    route.paths.length ? [
      h("h3", {}, "What the transaction swaps"),
      h("ol", { class: "paths" }, route.paths.map((path) =>
        h("li", {}, `${path.amountIn} ${spec.tokenIn} → ${path.amountOut} ${out}`, h("ul", {}, legs(path).map((leg) => h("li", {}, leg)))))),
    ] : null);
}

function outcome(route, confirmed, spec) {
  if (!route || !confirmed) return null;
  const difference = subtract(confirmed.amountOut, route.expectedOut);
  const bps = basisPoints(difference, route.expectedOut);
  return h("dl", { class: "facts outcome" },
    h("dt", {}, "Expected"), h("dd", {}, `${route.expectedOut} ${spec.tokenOut}`),
    h("dt", {}, "Executed"), h("dd", { id: "executed" }, `${confirmed.amountOut} ${spec.tokenOut}`),
    h("dt", {}, "Difference"), h("dd", {}, `${difference} ${spec.tokenOut}${bps === null ? "" : ` (${bps} bps)`}`));
}

function attempts(events) {
  const byAttempt = new Map();
  const at = (n) => byAttempt.get(n) || byAttempt.set(n, { attempt: n }).get(n);
  for (const message of events) {
    const data = message.data;
    if (message.event === "TransactionBuilt") Object.assign(at(data.attempt), { signature: data.signature, fee: data.priorityFeeLamports, built: message.timestamp });
    if (message.event === "TransactionSubmitted") Object.assign(at(data.attempt), { slot: data.slot });
    if (message.event === "AttemptFailed") Object.assign(at(data.attempt), { outcome: `failed: ${data.kind}`, reason: data.reason });
  }
  const confirmed = events.find((message) => message.event === "OrderConfirmed");
  if (confirmed && byAttempt.size) {
    const last = [...byAttempt.values()].find((row) => row.signature === confirmed.data.signature) || [...byAttempt.values()].at(-1);
    Object.assign(last, { outcome: "confirmed", reason: `in slot ${confirmed.data.slot}` });
  }
  if (!byAttempt.size) return h("p", { class: "hint" }, "No transaction yet.");
  return table(["Attempt", "Signature", "Priority fee", "Slot", "Outcome", "Why"], [...byAttempt.values()].map((row) =>
    h("tr", { class: row.outcome?.startsWith("failed") ? "failed" : "" },
      h("td", {}, row.attempt), h("td", { class: "mono" }, row.signature ? `${row.signature.slice(0, 16)}…` : ""),
      h("td", { class: "num" }, row.fee === undefined ? "" : `${row.fee} lamports`),
      h("td", {}, row.slot ?? ""), h("td", {}, row.outcome || "in flight"), h("td", {}, row.reason || ""))), { class: "attempts" });
}

export function orderPage(main, orderId) {
  const events = [];
  let status = null;
  let view = null;
  const header = h("div", { class: "order-head" });
  const progress = h("progress", { max: 100, value: 0, id: "order-progress", "aria-label": "progress" });
  const cancelButton = h("button", { type: "button", class: "danger", id: "cancel" }, "Cancel order");
  const cancelNote = h("p", { class: "field-error", role: "alert", id: "cancel-note" });
  const timeline = h("ol", { class: "timeline", id: "timeline" });
  const routeBox = h("div", {}, h("p", { class: "hint" }, "Not routed yet."));
  const attemptBox = h("div", {});
  const notice = h("p", { class: "problem", role: "alert", hidden: true });

  put(main, h("section", { class: "order" },
    h("h1", {}, "Order ", h("span", { class: "mono" }, orderId)),
    notice, header,
    h("div", { class: "progress-row" }, progress, cancelButton), cancelNote,
    h("div", { class: "columns" },
      h("div", {}, h("h2", {}, "Timeline"), timeline),
      h("div", {}, h("h2", {}, "Routing"), routeBox, h("h2", {}, "Attempts"), attemptBox))));

  function drawHeader() {
    if (!view) return;
    const terms = view.orderType === "limit" ? ` · limit ${view.limitPrice} ${view.tokenOut}/${view.tokenIn} ${view.timeInForce}`
      : view.orderType === "sniper" ? ` · sniper${view.limitPrice ? `, at most ${view.limitPrice}` : ""}` : "";
    put(header,
      h("p", {}, statusBadge(status), ` ${view.orderType} · ${view.amountIn} ${view.tokenIn} → ${view.tokenOut}${terms}`),
      h("p", { class: "hint" }, `created ${new Date(view.createdAt).toLocaleString()}${view.clientOrderId ? ` · client id ${view.clientOrderId}` : ""}`));
    cancelButton.hidden = TERMINAL.has(status);
  }

  function draw() {
    drawHeader();
    const routed = [...events].reverse().find((message) => message.event === "OrderRouted");
    const confirmed = events.find((message) => message.event === "OrderConfirmed");
    const failed = events.find((message) => message.event === "OrderFailed");
    if (routed && view) {
      put(routeBox, outcome(routed.data.route, confirmed?.data, view), routing(routed.data.route, view));
    }
    put(attemptBox, attempts(events), failed ? h("p", { class: "problem" }, `Failed (${failed.data.code}): ${failed.data.reason}`) : null);
  }

  function onMessage(message) {
    if (message.type === "connection") return;
    if (message.type === "error") {
      put(notice, message.detail || "stream error");
      notice.hidden = false;
      return;
    }
    if (events.length && message.seq <= events.at(-1).seq) return;
    events.push(message);
    status = message.status;
    progress.value = message.progress;
    timeline.append(h("li", { class: `step step-${message.status}`, "data-event": message.event, "data-status": message.status },
      h("span", { class: "seq" }, `#${message.seq}`),
      h("time", { datetime: message.timestamp }, time(message.timestamp)),
      statusBadge(message.status),
      h("span", { class: "event-name" }, message.event),
      h("p", { class: "message" }, message.message)));
    draw();
  }

  let stop = () => {};
  function connect() {
    stop = follow(`/api/orders/${encodeURIComponent(orderId)}/stream?afterSeq=${events.at(-1)?.seq || 0}`, onMessage, (code, reason) => {
      if (code === 1000 || TERMINAL.has(status)) return;
      put(notice, `The stream closed (${code}${reason ? `: ${reason}` : ""}).`);
      notice.hidden = false;
    });
  }

  cancelButton.addEventListener("click", async () => {
    cancelButton.disabled = true;
    cancelNote.textContent = "";
    try {
      const answer = await call("DELETE", `/api/orders/${encodeURIComponent(orderId)}`);
      cancelNote.textContent = answer.cancelled ? "" : `Already ${answer.status}.`;
    } catch (failure) {
      cancelNote.textContent = failure.message;
    } finally {
      cancelButton.disabled = false;
    }
  });

  call("GET", `/api/orders/${encodeURIComponent(orderId)}`).then((found) => {
    view = found;
    status = status || found.status;
    draw();
    connect();
  }, (failure) => {
    put(notice, failure.message);
    notice.hidden = false;
    cancelButton.hidden = true;
  });
  return () => stop();
}
