// Pre-flight page: follow the pre-flight of an upload live, then show its outcome.
//
// The status endpoint answers as soon as the pre-flight's state differs from "checking" (within a quarter
// of a second of the worker storing the verdict). Once settled, the page is loaded again: the server
// then redirects to the submission, or renders the refusal or the near-chance question on the upload
// page. Without JavaScript, a <noscript> refresh reloads every 5 s. The loop is live.js's.
(function () {
  "use strict";
  const box = document.getElementById("preflight");
  if (!box) return;
  const id = box.dataset.preflightId;
  window.KatakanaLive.tick(box.querySelector("[data-testid=elapsed]"));
  window.KatakanaLive.follow(
    function (waitS) { return "/uploads/preflights/" + id + "/status?known=checking" + (waitS ? "&wait=" + waitS : ""); },
    function (s) {
      if (!s.final) return false;
      window.location.replace(s.submission_url || s.url);
      return true;
    },
    function () { return box.querySelector("[data-testid=live-off]"); }
  );
})();
