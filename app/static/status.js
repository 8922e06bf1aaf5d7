// Result page: poll the small status endpoint and reload once the submission's state changes,
// so the page shows the queue position, then the result, without the trainee pressing reload.
(function () {
  "use strict";
  const result = document.getElementById("result");
  if (!result || result.dataset.final === "true") return;
  const id = result.dataset.submissionId;
  const shown = result.dataset.status;
  const position = document.querySelector("[data-testid=queue-position]");
  const shownPosition = position ? position.dataset.position : null;
  let delay = 2000;
  function poll() {
    fetch("/submissions/" + id + "/status", { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (s && (s.status !== shown || String(s.queue_position) !== String(shownPosition))) {
          window.location.reload();
          return;
        }
        delay = Math.min(delay * 1.3, 10000);
        window.setTimeout(poll, delay);
      })
      .catch(function () { window.setTimeout(poll, 10000); });
  }
  window.setTimeout(poll, delay);
})();
