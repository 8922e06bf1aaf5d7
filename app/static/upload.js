// Upload page: drag-and-drop, a size check before sending, and a progress bar (XMLHttpRequest,
// because fetch() cannot report upload progress). Without JavaScript the form still posts normally.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = document.getElementById("file");
  const zone = document.getElementById("dropzone");
  const selected = document.getElementById("selected-file");
  const progress = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const submit = document.getElementById("upload-submit");
  const errorBox = document.getElementById("upload-error");
  const errorMessage = document.getElementById("upload-error-message");
  const errorDetail = document.getElementById("upload-error-detail");
  const maxBytes = Number(form.dataset.maxBytes);
  const confirmBox = document.getElementById("near-chance-confirm");

  function humanSize(n) {
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }
  function showError(message, detail) {
    errorMessage.textContent = message;
    errorDetail.textContent = detail || "";
    errorDetail.hidden = !detail;
    errorBox.hidden = false;
  }
  function showSelected() {
    const file = input.files[0];
    selected.textContent = file
      ? selected.dataset.template.replace("{name}", file.name).replace("{size}", humanSize(file.size))
      : "";
  }

  input.addEventListener("change", function () {
    // A confirmation was for the zip that was checked, not for a newly chosen one.
    confirmBox.hidden = true;
    confirmBox.querySelector("input").checked = false;
    showSelected();
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
    if (!file) return;
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
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = {}; }
      if (xhr.status === 201 && body.url) { window.location.assign(body.url); return; }
      submit.disabled = false;
      progress.hidden = true;
      status.textContent = "";
      const error = body.error || {};
      // Near chance on the public images: offer "submit anyway"; the same file is sent again.
      if (error.code === "near_chance") confirmBox.hidden = false;
      const log = error.preflight && error.preflight.log;
      showError(error.message || xhr.statusText, [error.detail, log].filter(Boolean).join("\n\n"));
    });
    xhr.addEventListener("error", function () {
      submit.disabled = false;
      progress.hidden = true;
      showError(form.dataset.tooLarge);
    });
    submit.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    xhr.send(new FormData(form));
  });
})();
