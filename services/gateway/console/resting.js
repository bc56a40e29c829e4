// Resting orders: limit and sniper orders waiting for their trigger, each with a cancel button.

import { call } from "./api.js";
import { h, put, shortId, time } from "./dom.js";
import { liveOrders } from "./orders.js";

function terms(order) {
  if (order.orderType === "sniper") {
    return `pool launch, ${order.limitPrice ? `at most ${order.limitPrice} ${order.tokenIn}/${order.tokenOut}` : "any price"}`;
  }
  const floor = order.floorOut ? ` (at least ${order.floorOut} ${order.tokenOut})` : "";
  return `${order.limitPrice} ${order.tokenOut}/${order.tokenIn}${floor}`;
}

export function resting(main) {
  const body = h("tbody", {});
  const problem = h("p", { class: "problem", role: "alert", hidden: true });
  put(main,
    h("section", { class: "resting" },
      h("h1", {}, "Resting orders"),
      h("p", { class: "hint" }, "Limit and sniper orders waiting for their price or their pool. An order that fires leaves this list."),
      problem,
      h("table", { id: "resting" },
        h("thead", {}, h("tr", {},
          ["Created", "Order", "Type", "Pair", "Amount", "Fires at", "Time in force", "Expires", ""].map((name) => h("th", {}, name)))),
        body)));

  async function cancel(order, button) {
    button.disabled = true;
    try {
      await call("DELETE", `/api/orders/${encodeURIComponent(order.orderId)}`);
      await live.refresh();
    } catch (failure) {
      put(problem, failure.message);
      problem.hidden = false;
      button.disabled = false;
    }
  }

  function row(order) {
    const button = h("button", { type: "button", class: "danger" }, "Cancel");
    button.addEventListener("click", () => cancel(order, button));
    return h("tr", { "data-order-id": order.orderId },
      h("td", {}, time(order.createdAt)),
      h("td", {}, h("a", { href: `#/orders/${encodeURIComponent(order.orderId)}`, title: order.orderId }, shortId(order.orderId))),
      h("td", {}, order.orderType),
      h("td", {}, `${order.tokenIn} → ${order.tokenOut}`),
      h("td", { class: "num" }, `${order.amountIn} ${order.tokenIn}`),
      h("td", {}, terms(order)),
      h("td", {}, order.timeInForce || ""),
      h("td", {}, order.expiresAt ? new Date(order.expiresAt).toLocaleString() : ""),
      h("td", {}, button));
  }

  const live = liveOrders({
    status: "open",
    limit: 100,
    onChange(orders) {
      const open = orders.filter((order) => order.status === "open");
      put(body, open.length ? open.map(row) : h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No resting orders.")));
    },
    onError(failure) {
      put(problem, failure.message);
      problem.hidden = false;
    },
  });
  return () => live.stop();
}
