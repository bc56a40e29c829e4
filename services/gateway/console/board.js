// The board: the account's newest orders with a count per status, live.

import { STATUSES } from "./api.js";
import { h, put, shortId, statusBadge, time } from "./dom.js";
import { liveOrders } from "./orders.js";

const LIMIT = 50;

function counts(orders) {
  const by = new Map(STATUSES.map((status) => [status, 0]));
  for (const order of orders) by.set(order.status, (by.get(order.status) || 0) + 1);
  return h("ul", { class: "counts", "aria-label": "Orders by status" },
    [...by].map(([status, count]) =>
      h("li", { class: `count status-${status}`, "data-status": status },
        h("span", { class: "count-name" }, status), h("strong", { class: "count-value" }, count))));
}

function row(order) {
  return h("tr", { "data-order-id": order.orderId, "data-status": order.status },
    h("td", {}, time(order.createdAt)),
    h("td", {}, h("a", { href: `#/orders/${encodeURIComponent(order.orderId)}`, title: order.orderId }, shortId(order.orderId))),
    h("td", {}, order.orderType),
    h("td", {}, `${order.tokenIn} → ${order.tokenOut}`),
    h("td", { class: "num" }, `${order.amountIn} ${order.tokenIn}`),
    h("td", {}, statusBadge(order.status)),
    h("td", {}, h("progress", { max: 100, value: order.progress, "aria-label": "progress" })),
    h("td", { class: "num" }, order.amountOut ? `${order.amountOut} ${order.tokenOut}` : ""));
}

export function board(main) {
  const summary = h("div", {});
  const problem = h("p", { class: "problem", role: "alert", hidden: true });
  const body = h("tbody", {});
  put(main,
    h("section", { class: "board" },
      h("div", { class: "title" }, h("h1", {}, "Orders"), h("a", { class: "button", href: "#/submit" }, "New order")),
      h("p", { class: "hint" }, `Your newest ${LIMIT} orders, updated as their events arrive.`),
      summary, problem,
      h("table", { id: "orders" },
        h("thead", {}, h("tr", {},
          ["Created", "Order", "Type", "Pair", "Amount", "Status", "Progress", "Received"].map((name) => h("th", {}, name)))),
        body)));
  const live = liveOrders({
    limit: LIMIT,
    onChange(orders) {
      problem.hidden = true;
      put(summary, counts(orders));
      put(body, orders.length ? orders.map(row) : h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No orders yet.")));
    },
    onError(failure) {
      put(problem, failure.message);
      problem.hidden = false;
    },
  });
  return () => live.stop();
}
