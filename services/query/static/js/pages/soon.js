// Pages still to come (they show no data until their API exists), and the page for unknown paths.

import { h } from "../dom.js";

export function soon(title, text) {
  return {
    title,
    rangeApplies: false,
    rangeNote: "",
    render({ main }) {
      main.append(h("h1", {}, title), h("div", { class: "panel state empty" }, h("p", {}, `${text} This page is not ready yet.`), h("p", {}, h("a", { href: "/", "data-link": true }, "Back to the overview"))));
    },
  };
}

export const notFound = {
  title: "Not found",
  rangeApplies: false,
  render({ main }) {
    main.append(h("h1", {}, "No such page"), h("p", { class: "state" }, `Nothing lives at ${location.pathname}. `, h("a", { href: "/", "data-link": true }, "Go to the overview"), "."));
  },
};
