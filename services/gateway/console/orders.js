// The account's orders, kept current: each unfinished order is followed over its stream
// (a few at a time), and the list is read again now and then for orders placed elsewhere.

import { call, follow, TERMINAL } from "./api.js";

const MAX_FOLLOWED = 20;
const RELIST_MS = 3000;

function newestFirst(a, b) {
  return a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0;
}

/**
 * Keeps `onChange(orders)` told of the newest `limit` orders (in `status`, when given).
 * Returns `{stop, refresh}`.
 */
export function liveOrders({ status = null, limit = 50, onChange, onError }) {
  const orders = new Map(); // orderId -> the order view, updated by its events
  const followed = new Map(); // orderId -> stop following
  let stopped = false;

  const changed = () => onChange([...orders.values()].sort(newestFirst));

  function apply(orderId, message) {
    const current = orders.get(orderId);
    if (!current || message.seq === undefined || message.seq <= current.lastSeq) return;
    orders.set(orderId, {
      ...current,
      status: message.status,
      progress: message.progress,
      lastSeq: message.seq,
      amountOut: message.data?.amountOut ?? current.amountOut,
      updatedAt: message.timestamp,
    });
    changed();
  }

  function track(order) {
    if (followed.has(order.orderId) || TERMINAL.has(order.status) || followed.size >= MAX_FOLLOWED) return;
    const path = `/api/orders/${encodeURIComponent(order.orderId)}/stream?afterSeq=${order.lastSeq}`;
    const stop = follow(path, (message) => apply(order.orderId, message), () => followed.delete(order.orderId));
    followed.set(order.orderId, stop);
  }

  async function refresh() {
    const query = new URLSearchParams({ limit: String(limit) });
    if (status) query.set("status", status);
    let page;
    try {
      page = await call("GET", `/api/orders?${query}`);
    } catch (failure) {
      if (!stopped) onError(failure);
      return;
    }
    if (stopped) return;
    const listed = new Set(page.orders.map((order) => order.orderId));
    for (const order of page.orders) {
      const known = orders.get(order.orderId);
      // The read model may lag the stream: keep whichever saw more of the order.
      if (!known || order.lastSeq >= known.lastSeq) orders.set(order.orderId, order);
    }
    for (const orderId of [...orders.keys()]) {
      if (!listed.has(orderId)) {
        orders.delete(orderId);
        followed.get(orderId)?.();
        followed.delete(orderId);
      }
    }
    for (const order of orders.values()) track(order);
    changed();
  }

  refresh();
  const timer = setInterval(refresh, RELIST_MS);
  return {
    refresh,
    stop() {
      stopped = true;
      clearInterval(timer);
      for (const stop of followed.values()) stop();
      followed.clear();
    },
  };
}
