// bgcut-watchd status page: refresh <main> in place every few seconds (the page works without
// this script; it then reloads itself every half minute).
"use strict";
(function () {
  const main = document.getElementById("main");
  const everyMs = 1000 * Number((main && main.dataset.refreshS) || 5);
  async function refresh() {
    const url = new URL(location.pathname, location.href);
    url.searchParams.set("part", "main");
    try {
      const answer = await fetch(url, { cache: "no-store", credentials: "same-origin" });
      if (!answer.ok) return;
      const html = await answer.text();
      const current = document.getElementById("main");
      if (current) current.outerHTML = html;
      document.body.dataset.refreshed = String(Date.now());
    } catch (error) {
      // the daemon may be restarting: the next turn tries again
    }
  }
  setInterval(refresh, everyMs);
})();
