// The page for unknown paths.

import { h } from "../dom.js";

export const notFound = {
  title: "Not found",
  rangeApplies: false,
  render({ main }) {
    main.append(h("h1", {}, "No such page"), h("p", { class: "state" }, `Nothing lives at ${location.pathname}. `, h("a", { href: "/", "data-link": true }, "Go to the overview"), "."));
  },
};
