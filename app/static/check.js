// Upload check page: follow the pre-flight of an upload live, then show its outcome.
//
// The status endpoint long-polls like a submission's: it answers as soon as the check's state
// differs from "checking" (within a quarter of a second of the worker storing the verdict), else after
// 25 s, and we ask again. Once settled, the page is loaded again: the server then redirects to the
// submission, or renders the refusal or the near-chance question on the upload page. Without
// JavaScript, a <noscript> refresh reloads every 5 s.
(function () {
  "use strict";
  const LONG_WAIT_S = 25;
  const box = document.getElementById("check");
  if (!box) return;
  const id = box.dataset.checkId;
  let failures = 0;

  function format(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, k) { return values[k] !== undefined ? values[k] : ""; });
  }
  const el = box.querySelector("[data-testid=elapsed]");
  if (el) {
    const base = Number(el.dataset.elapsed) || 0;
    const began = Date.now();
    const show = function () {
      const total = Math.floor(base + (Date.now() - began) / 1000);
      const m = Math.floor(total / 60);
      const s = total % 60;
      const text = m ? format(el.dataset.formatMs, { m: m, s: String(s).padStart(2, "0") })
                     : format(el.dataset.formatS, { s: s });
      el.textContent = format(el.dataset.template, { elapsed: text });
    };
    show();
    window.setInterval(show, 1000);
  }

  function poll() {
    const longPoll = failures < 2;
    const url = "/uploads/checks/" + id + "/status?known=checking" + (longPoll ? "&wait=" + LONG_WAIT_S : "");
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
      .then(function (s) {
        failures = 0;
        if (s.final) { window.location.replace(s.submission_url || s.url); return; }
        window.setTimeout(poll, longPoll ? 0 : 2000);
      })
      .catch(function () {
        failures += 1;
        if (failures >= 6) {
          const off = box.querySelector("[data-testid=live-off]");
          if (off) off.hidden = false;
        }
        window.setTimeout(poll, Math.min(1000 * Math.pow(1.5, failures), 15000));
      });
  }
  poll();
})();
