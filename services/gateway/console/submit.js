// The submit form: market, limit (GTC/GTD/IOC) and sniper orders. Nothing is checked
// here that the API checks: its 4xx names the field, and the detail is shown beside it.

import { ApiFailure, call } from "./api.js";
import { h, put } from "./dom.js";

const TOKENS = ["SOL", "USDC", "USDT", "JUP", "RAY", "WIF", "BONK", "PUMP", "MEW", "POPCAT"];
// Which inputs each order type sends (the rest are hidden).
const FIELDS = {
  market: ["tokenIn", "tokenOut", "amount", "slippageBps", "clientOrderId"],
  limit: ["tokenIn", "tokenOut", "amount", "slippageBps", "clientOrderId", "limitPrice", "timeInForce", "expiresAt"],
  sniper: ["tokenIn", "tokenOut", "amount", "slippageBps", "clientOrderId", "maxPrice", "expiresAt"],
};

function field(name, label, control, hint) {
  control.id = `field-${name}`;
  control.name = name;
  control.setAttribute("aria-describedby", `error-${name}`);
  return h("div", { class: "field", "data-field": name },
    h("label", { for: control.id }, label),
    control,
    hint ? h("small", {}, hint) : null,
    h("p", { class: "field-error", id: `error-${name}`, role: "alert" }));
}

function text(attrs) {
  return h("input", { type: "text", autocomplete: "off", spellcheck: "false", ...attrs });
}

function choice(options, selected) {
  return h("select", {}, options.map((option) => h("option", { value: option, selected: option === selected }, option)));
}

export function submitForm(main, navigate) {
  const form = h("form", { id: "submit-form", novalidate: true },
    field("orderType", "Order type", choice(["market", "limit", "sniper"], "market")),
    h("div", { class: "row" },
      field("tokenIn", "Pay with", text({ list: "tokens", value: "SOL" })),
      field("tokenOut", "Receive", text({ list: "tokens", value: "USDC" }))),
    h("div", { class: "row" },
      field("amount", "Amount", text({ inputmode: "decimal", placeholder: "0.5" }), "in units of the token you pay with"),
      field("slippageBps", "Slippage (bps)", text({ inputmode: "numeric", value: "50" }))),
    h("div", { class: "row" },
      field("limitPrice", "Limit price", text({ inputmode: "decimal", placeholder: "150.5" }), "least received per unit paid"),
      field("timeInForce", "Time in force", choice(["GTC", "GTD", "IOC"], "GTC"))),
    field("maxPrice", "Max price", text({ inputmode: "decimal", placeholder: "0.0025" }), "most paid per unit received (optional)"),
    field("expiresAt", "Expires at", h("input", { type: "datetime-local" }), "your local time"),
    field("clientOrderId", "Client order id", text({ placeholder: "optional: retry-safe key" })),
    h("p", { class: "form-error field-error", id: "error-form", role: "alert" }),
    h("button", { type: "submit" }, "Submit order"),
    h("datalist", { id: "tokens" }, TOKENS.map((token) => h("option", { value: token }))));

  const control = (name) => form.elements.namedItem(name);
  const wrapper = (name) => form.querySelector(`[data-field="${name}"]`);

  function shownFields() {
    const type = control("orderType").value;
    const names = new Set(FIELDS[type]);
    if (type === "limit" && control("timeInForce").value !== "GTD") names.delete("expiresAt");
    return names;
  }

  function layout() {
    const names = shownFields();
    for (const wrap of form.querySelectorAll("[data-field]")) {
      wrap.hidden = wrap.dataset.field !== "orderType" && !names.has(wrap.dataset.field);
    }
  }

  function clearErrors() {
    for (const error of form.querySelectorAll(".field-error")) error.textContent = "";
    for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  }

  function showError(failure) {
    const name = failure.field;
    const target = name && wrapper(name) && !wrapper(name).hidden ? name : "form";
    form.querySelector(`#error-${target}`).textContent = failure.message;
    if (target !== "form") {
      control(name).setAttribute("aria-invalid", "true");
      control(name).focus();
    }
  }

  function body() {
    const order = { orderType: control("orderType").value };
    for (const name of shownFields()) {
      const value = control(name).value.trim();
      if (value === "") continue;
      if (name === "expiresAt") {
        const at = new Date(value);
        order.expiresAt = Number.isNaN(at.getTime()) ? value : at.toISOString();
      } else if (name === "slippageBps" && /^\d+$/.test(value)) {
        order.slippageBps = Number(value);
      } else {
        order[name] = value;
      }
    }
    return order;
  }

  form.addEventListener("change", layout);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const accepted = await call("POST", "/api/orders", body());
      navigate(`#/orders/${encodeURIComponent(accepted.orderId)}`);
    } catch (failure) {
      showError(failure instanceof ApiFailure ? failure : new ApiFailure(0, { detail: String(failure) }));
    } finally {
      button.disabled = false;
    }
  });

  put(main, h("section", { class: "submit" },
    h("h1", {}, "Submit an order"),
    h("p", { class: "hint" }, "The engine routes each order to the venue, split or hops that pay the most."),
    form));
  layout();
  return () => {};
}
