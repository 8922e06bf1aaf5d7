// Result page: follow a waiting submission live, without reloading the page.
//
// The status endpoint long-polls: it answers as soon as the submission's state differs from the
// one this page shows (within a tenth of a second of the worker storing the result), else after
// 25 s, and we ask again. When the state changed, the page's #result section and title are
// replaced by a freshly fetched copy of the page, so the result appears in place. If long polling
// fails (a proxy that cuts held requests, a network blip), plain polling with a growing delay takes
// over; without JavaScript, a <noscript> refresh reloads the page every 10 s.
(function () {
  "use strict";
  const LONG_WAIT_S = 25;
  let result = document.getElementById("result");
  if (!result || result.dataset.final === "true") return;
  const id = result.dataset.submissionId;
  const announce = document.getElementById("live-announce");
  let failures = 0;
  let ticker = null;

  function format(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, k) { return values[k] !== undefined ? values[k] : ""; });
  }
  // The elapsed time counts up every second from the server's figure, in the page's language.
  function startTicker() {
    if (ticker) window.clearInterval(ticker);
    const el = result.querySelector("[data-testid=elapsed]");
    if (!el) return;
    const base = Number(el.dataset.elapsed) || 0;
    const began = Date.now();
    function show() {
      const total = Math.floor(base + (Date.now() - began) / 1000);
      const m = Math.floor(total / 60);
      const s = total % 60;
      const text = m ? format(el.dataset.formatMs, { m: m, s: String(s).padStart(2, "0") })
                     : format(el.dataset.formatS, { s: s });
      el.textContent = format(el.dataset.template, { elapsed: text });
    }
    show();
    ticker = window.setInterval(show, 1000);
  }

  function swapIn(html) {
    const doc = new DOMParser().parseFromString(html, "text/html");
    const fresh = doc.getElementById("result");
    if (!fresh) return false;
    result.replaceWith(fresh);
    result = fresh;
    document.title = doc.title;
    if (announce) announce.textContent = fresh.dataset.announce || "";
    return true;
  }

  function refresh() {
    return fetch(window.location.pathname, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.text(); })
      .then(function (html) {
        if (!swapIn(html)) throw new Error("no #result");
        if (result.dataset.final === "true") {
          if (ticker) window.clearInterval(ticker);
          return;
        }
        startTicker();
        poll();
      });
  }

  function poll() {
    const known = result.dataset.fingerprint || "";
    // After two failures in a row, stop holding requests open and poll plainly, more slowly.
    const longPoll = failures < 2;
    const url = "/submissions/" + id + "/status?known=" + encodeURIComponent(known) +
      (longPoll ? "&wait=" + LONG_WAIT_S : "");
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
      .then(function (s) {
        failures = 0;
        if (s.fingerprint !== known || s.final) return refresh();
        window.setTimeout(poll, longPoll ? 0 : 2000);
      })
      .catch(function () {
        failures += 1;
        if (failures >= 6) {
          const off = result.querySelector("[data-testid=live-off]");
          if (off) off.hidden = false;
        }
        window.setTimeout(poll, Math.min(1000 * Math.pow(1.5, failures), 15000));
      });
  }

  startTicker();
  poll();
})();
