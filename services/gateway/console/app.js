// The console's entry: sign-in, and the view the URL's fragment names.
//   #/               the board of orders        #/orders/<id>   one order, live
//   #/submit         the submit form            #/resting       resting orders
//   #/quotes/<pair>  live quotes of a pair

import { ApiFailure, apiKey, call, forget, keep } from "./api.js";
import { board } from "./board.js";
import { h, put } from "./dom.js";
import { orderPage } from "./order.js";
import { quotesView } from "./quotes.js";
import { resting } from "./resting.js";
import { submitForm } from "./submit.js";

const main = document.getElementById("view");
const signOut = document.getElementById("sign-out");
let leave = () => {};

function navigate(hash) {
  if (window.location.hash === hash) show();
  else window.location.hash = hash;
}

function signIn() {
  const input = h("input", { id: "api-key", name: "apiKey", type: "password", autocomplete: "off", spellcheck: "false", placeholder: "dex_…", "aria-describedby": "error-apiKey" });
  const error = h("p", { class: "field-error", id: "error-apiKey", role: "alert" });
  const form = h("form", { id: "sign-in", class: "sign-in" },
    h("h1", {}, "Sign in"),
    h("p", { class: "hint" }, "Paste your API key. It stays in this tab only (sessionStorage) and is sent to this gateway alone. ",
      "Under make run the key is in .run/api-key."),
    h("div", { class: "field" }, h("label", { for: "api-key" }, "API key"), input, error),
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const key = input.value.trim();
    try {
      await call("GET", "/api/orders?limit=1", undefined, key); // checks the key before keeping it
    } catch (failure) {
      error.textContent = failure instanceof ApiFailure ? failure.message : String(failure);
      input.setAttribute("aria-invalid", "true");
      return;
    }
    keep(key);
    show();
  });
  put(main, form);
  input.focus();
}

function show() {
  leave();
  leave = () => {};
  const [, view = "", ...rest] = window.location.hash.replace(/^#/, "").split("/");
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("current", link.dataset.view === (view === "orders" ? "board" : view || "board"));
  }
  signOut.hidden = !apiKey();
  if (!apiKey()) {
    signIn();
    return;
  }
  const views = {
    "": () => board(main),
    submit: () => submitForm(main, navigate),
    resting: () => resting(main),
    quotes: () => quotesView(main, decodeURIComponent(rest[0] || ""), navigate),
    orders: () => (rest[0] ? orderPage(main, decodeURIComponent(rest[0])) : board(main)),
  };
  leave = (views[view] || views[""])();
}

signOut.addEventListener("click", () => {
  forget();
  navigate("#/");
});
// A key revoked while signed in: back to the sign-in form.
window.addEventListener("engine:unauthorized", () => {
  if (!apiKey()) return;
  forget();
  show();
});
window.addEventListener("hashchange", show);
show();
