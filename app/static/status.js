// Result page: follow a waiting submission live, without reloading the page.
//
// The status endpoint long-polls: it answers as soon as the submission's state differs from the
// one this page shows (within a tenth of a second of the worker storing the result), else after
// 25 s, and we ask again. When the state changed, the page's #result section and title are
// replaced by a freshly fetched copy of the page, so the result appears in place. If long polling
// fails (a proxy that cuts held requests, a network blip), plain polling with a growing delay takes
// over; without JavaScript, a <noscript> refresh reloads the page every 10 s. The loop is live.js's.
(function () {
  "use strict";
  let result = document.getElementById("result");
  if (!result || result.dataset.final === "true") return;
  const id = result.dataset.submissionId;
  const announce = document.getElementById("live-announce");
  let stopTicker = function () {};

  function startTicker() {
    stopTicker();
    stopTicker = window.KatakanaLive.tick(result.querySelector("[data-testid=elapsed]"));
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

  // The state changed: fetch the page again and swap its #result in; stop once it is final.
  function refresh() {
    return fetch(window.location.pathname, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.text(); })
      .then(function (html) {
        if (!swapIn(html)) throw new Error("no #result");
        if (result.dataset.final === "true") {
          stopTicker();
          return true;
        }
        startTicker();
        return false;
      });
  }

  // The expected wait moves with the queue even while the place does not: shown from each answer.
  function showWait(s) {
    const el = result.querySelector("[data-testid=wait]");
    if (!el) return;
    const live = window.KatakanaLive;
    if (s.wait_s !== null && s.wait_s !== undefined) {
      el.textContent = live.format(el.dataset.template, {
        wait: live.clock(el, s.wait_s), ahead: s.runs_ahead, run: live.clock(el, s.estimate_s),
        workers: s.scoring_workers || 1,
      });
      el.hidden = false;
    } else if (s.scoring_workers === 0) {
      el.textContent = el.dataset.noWorker;
      el.hidden = false;
    }
  }

  startTicker();
  window.KatakanaLive.follow(
    function (waitS) {
      const known = result.dataset.fingerprint || "";
      return "/submissions/" + id + "/status?known=" + encodeURIComponent(known) + (waitS ? "&wait=" + waitS : "");
    },
    function (s) {
      if (s.fingerprint !== (result.dataset.fingerprint || "") || s.final) return refresh();
      showWait(s);
      return false;
    },
    function () { return result.querySelector("[data-testid=live-off]"); }
  );
})();
