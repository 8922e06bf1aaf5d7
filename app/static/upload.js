// Upload page: drag-and-drop, a size check before sending, and a progress bar (XMLHttpRequest,
// because fetch() cannot report upload progress). Without JavaScript the form still posts normally.
// Every message comes from the page's data-* attributes, already in the user's language.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  const errorBox = document.getElementById("upload-error");
  const errorMessage = document.getElementById("upload-error-message");
  const errorDetail = document.getElementById("upload-error-detail");
  const errorCode = document.getElementById("upload-error-code");

  // An error the server rendered (the no-JavaScript path, or a reload) is brought into view and
  // focused too, so a screen reader announces it and a phone shows it without scrolling.
  function reveal() {
    errorBox.hidden = false;
    errorBox.focus({ preventScroll: true });
    errorBox.scrollIntoView({ block: "start", behavior: "auto" });
  }
  if (errorBox && !errorBox.hidden) reveal();
  if (!form) return;
  if (form.dataset.blocked === "true") {
    // Today's uploads are used up: the controls are disabled in the page itself. A file dropped
    // on the zone anyway must not make the browser navigate away to it.
    ["dragover", "drop"].forEach(function (type) {
      form.addEventListener(type, function (e) { e.preventDefault(); });
    });
    return;
  }

  const input = document.getElementById("file");
  const zone = document.getElementById("dropzone");
  const selected = document.getElementById("selected-file");
  const progress = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const submit = document.getElementById("upload-submit");
  const maxBytes = Number(form.dataset.maxBytes);
  const confirmBox = document.getElementById("near-chance-confirm");
  // Our own messages replace the browser's "required" bubble, which is in the browser's language.
  form.noValidate = true;

  function humanSize(n) {
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }
  // A message that shows code ends with it, after a line "例:" / "Example:" (as the server splits
  // it, app/web/templating.py): the code goes in a monospace block that scrolls, not wraps.
  function showError(message, detail, logText) {
    const parts = (detail || "").split(/\n(例|Example):\n/);
    const prose = parts.length === 3 ? parts[0] + "\n" + parts[1] + ":" : (detail || "");
    errorMessage.textContent = message;
    errorDetail.textContent = prose;
    errorDetail.hidden = !prose;
    errorCode.firstChild.textContent = parts.length === 3 ? parts[2] : "";
    errorCode.hidden = parts.length !== 3;
    const old = errorBox.querySelector("details");
    if (old) old.remove();  // a log from an earlier refusal would belong to another file
    if (logText) {  // the log is evidence, not the message: folded away, as on the server's page
      const details = document.createElement("details");
      const summary = document.createElement("summary");
      const pre = document.createElement("pre");
      summary.textContent = form.dataset.logLabel;
      pre.className = "log";
      pre.tabIndex = 0;  // it may scroll: keyboard users reach it too
      pre.dataset.testid = "preflight-log";
      pre.textContent = logText;
      details.append(summary, pre);
      errorBox.append(details);
    }
    reveal();
  }
  function showSelected() {
    const file = input.files[0];
    selected.textContent = file
      ? selected.dataset.template.replace("{name}", file.name).replace("{size}", humanSize(file.size))
      : "";
    if (file) errorBox.hidden = true;
  }
  function reset() {
    submit.disabled = false;
    progress.hidden = true;
    status.textContent = "";
  }

  input.addEventListener("change", function () {
    // A confirmation was for the zip that was checked, not for a newly chosen one.
    confirmBox.hidden = true;
    confirmBox.querySelector("input").checked = false;
    showSelected();
  });
  // The drop zone is a keyboard stop of its own: Enter or Space opens the file chooser.
  zone.addEventListener("keydown", function (e) {
    if (e.target !== zone) return;
    if (e.key === "Enter" || e.key === " " || e.key === "Spacebar") {
      e.preventDefault();  // Space would scroll the page
      // Opened inside the key event itself, while the key press still counts as the user's gesture:
      // a picker opened later (even from a zero-delay timer) can be refused once that gesture has
      // lapsed, as it does on a busy machine.
      input.click();
    }
  });
  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (e) { e.preventDefault(); zone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (type) {
    zone.addEventListener(type, function (e) { e.preventDefault(); zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (e) {
    if (e.dataTransfer && e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      showSelected();
    }
  });

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    errorBox.hidden = true;
    const file = input.files[0];
    if (!file) { showError(form.dataset.noFile); return; }
    if (file.size > maxBytes) { showError(form.dataset.tooLarge); return; }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    xhr.upload.addEventListener("progress", function (ev) {
      if (!ev.lengthComputable) return;
      const percent = Math.floor((ev.loaded / ev.total) * 100);
      progress.value = percent;
      status.textContent = form.dataset.uploading.replace("{percent}", percent);
      if (ev.loaded === ev.total) status.textContent = form.dataset.checking;
    });
    xhr.addEventListener("load", function () {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = null; }
      if ((xhr.status === 201 || xhr.status === 202) && body && body.url) { window.location.assign(body.url); return; }
      reset();
      const error = (body && body.error) || null;
      if (!error) {  // a proxy's or gateway's page, not ours: say so instead of showing its HTML
        showError(form.dataset.server.replace("{status}", String(xhr.status)));
        return;
      }
      // Near chance on the public images: the check's page asks "submit anyway?" and accepts the
      // zip already received; without a check (none recorded) the same file is sent again.
      if (error.code === "near_chance" && error.preflight_id) {
        window.location.assign("/uploads/preflights/" + error.preflight_id);
        return;
      }
      if (error.code === "near_chance") confirmBox.hidden = false;
      showError(error.message, error.detail, error.preflight && error.preflight.log);
    });
    // No answer at all: the connection dropped (the size was checked above, so it is not that).
    ["error", "timeout", "abort"].forEach(function (type) {
      xhr.addEventListener(type, function () {
        reset();
        showError(form.dataset.network);
      });
    });
    submit.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    xhr.send(new FormData(form));
  });
})();
