// Running one insight into a panel: one API request, then its chart and table, or the loading, empty
// and error states; the panel's "Download CSV" button exports the table that was drawn.

import { api } from "../api.js";
import { csvButton, csvName } from "../csv.js";
import { showEmpty, showError, showLoading } from "../dom.js";

/** Run `view`'s request for `query` over `range` into `body`; a CSV button goes into `tools`.
 * Resolves to the API's answer (or null when it failed or was cancelled). */
export async function runInsight(view, query, range, { body, tools, signal, compact = false, name = "" }) {
  let drawn = null;
  tools?.querySelector(".csv")?.remove();
  if (tools) tools.append(csvButton(csvName(name || view.title, range.start, range.end), () => drawn));
  const attempt = async () => {
    drawn = null;
    showLoading(body);
    let data;
    try {
      const request = view.request(query, range);
      data = await api(request.path, { ...request, signal });
    } catch (error) {
      if (error.name === "AbortError") return null;
      showError(body, error, attempt);
      return null;
    }
    if (signal?.aborted) return null;
    if (view.isEmpty(data, query)) {
      showEmpty(body, view.emptyText(query, range));
      drawn = view.table(data, query);
      return data;
    }
    drawn = view.render(body, data, { query, range, compact, signal });
    return data;
  };
  return attempt();
}
