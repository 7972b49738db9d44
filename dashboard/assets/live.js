// Live updates: every 2 s, fetch this page's <main> again (the same URL with ?fragment=1,
// rendered by the server) and swap it in when it changed. No reload, no framework; when the
// session has ended, go to the login page.
(function () {
  "use strict";
  const main = document.getElementById("live");
  const stamp = document.getElementById("updated");
  if (!main) return;
  let last = null;
  let busy = false;
  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const url = new URL(window.location.href);
      url.searchParams.set("fragment", "1");
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) {
        window.location.href = "/login?next=" +
          encodeURIComponent(window.location.pathname + window.location.search);
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      const html = await response.text();
      if (html !== last) {
        main.innerHTML = html;
        // Counts changes after the first fetch (which only replaces the page's own markup).
        if (last !== null) stamp.dataset.updates = String(Number(stamp.dataset.updates) + 1);
      }
      last = html;
      stamp.textContent = "live · " + new Date().toLocaleTimeString();
      stamp.classList.remove("stale");
    } catch (e) {
      stamp.textContent = "not updating: " + e.message;
      stamp.classList.add("stale");
    } finally {
      busy = false;
    }
  }
  refresh();
  window.setInterval(refresh, 2000);
})();
