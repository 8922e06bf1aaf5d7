// What the pages that follow something live share (a submission's result, an upload's check):
// the elapsed-time counter and the long-poll loop with its fallback.
//
// The status endpoints long-poll: they answer as soon as the state differs from the one the page
// shows, else after LONG_WAIT_S, and we ask again. An answer with Retry-After (this user already
// holds as many waiting requests as the site allows: several tabs) is followed after that many
// seconds, not at once. If long polling fails twice in a row (a proxy that cuts held requests, a
// network blip), plain polling every 2 s takes over with a growing delay after failures; after six
// failures in a row the page says live updates are off.
window.KatakanaLive = (function () {
  "use strict";
  const LONG_WAIT_S = 25;

  function format(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, k) { return values[k] !== undefined ? values[k] : ""; });
  }

  // Seconds as "2分05秒" / "2 min 05 s", in the formats the element carries (data-format-ms/-s).
  function clock(el, seconds) {
    const total = Math.max(0, Math.floor(Number(seconds) || 0));
    const m = Math.floor(total / 60);
    const s = total % 60;
    return m ? format(el.dataset.formatMs, { m: m, s: String(s).padStart(2, "0") })
             : format(el.dataset.formatS, { s: s });
  }

  // Count up every second from the server's figure, in the page's language; returns how to stop.
  function tick(el) {
    if (!el) return function () {};
    const base = Number(el.dataset.elapsed) || 0;
    const began = Date.now();
    function show() {
      el.textContent = format(el.dataset.template, { elapsed: clock(el, base + (Date.now() - began) / 1000) });
    }
    show();
    const timer = window.setInterval(show, 1000);
    return function () { window.clearInterval(timer); };
  }

  // Ask statusUrl(waitSeconds) (0: answer at once) and hand each answer to onStatus, which returns
  // true to stop, false to ask again, or a promise of either (a failed promise counts as a failure).
  // offNotice() finds the element that says live updates are off.
  function follow(statusUrl, onStatus, offNotice) {
    let failures = 0;
    function poll() {
      const longPoll = failures < 2;
      let pause = longPoll ? 0 : 2000;
      fetch(statusUrl(longPoll ? LONG_WAIT_S : 0), { headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (r) {
          if (!r.ok) throw new Error(String(r.status));
          const retryAfter = Number(r.headers.get("Retry-After"));
          if (retryAfter > 0) pause = Math.max(pause, retryAfter * 1000);
          return r.json();
        })
        .then(function (s) { failures = 0; return onStatus(s); })
        .then(function (stop) { if (!stop) window.setTimeout(poll, pause); })
        .catch(function () {
          failures += 1;
          if (failures >= 6) {
            const off = offNotice();
            if (off) off.hidden = false;
          }
          window.setTimeout(poll, Math.min(1000 * Math.pow(1.5, failures), 15000));
        });
    }
    poll();
  }

  return { format: format, clock: clock, tick: tick, follow: follow };
})();
