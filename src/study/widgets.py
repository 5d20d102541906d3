"""Widgets the standard ipywidgets set lacks. ``CameraSnapshot``: a browser camera preview with a
snapshot button, built on anywidget (an ES module beside an ipywidgets 8 model; nothing loaded
from the network). The browser asks the person for permission; when there is no camera, no
permission, or no secure context (HTTPS or localhost), the widget reports why in ``error``.
"""

from __future__ import annotations

import anywidget
import traitlets

_ESM = r"""
function reason(e) {
  if (!e) return "unknown error";
  if (e.name === "NotAllowedError" || e.name === "SecurityError") return "permission to use the camera was refused";
  if (e.name === "NotFoundError" || e.name === "OverconstrainedError") return "no camera was found";
  if (e.name === "NotReadableError") return "the camera is in use by another program";
  return (e.message || String(e)).slice(0, 120);
}
function render({ model, el }) {
  el.classList.add("study-camera");
  const start = document.createElement("button");
  start.textContent = "Start camera";
  start.className = "jupyter-button study-camera-start";
  const snap = document.createElement("button");
  snap.textContent = "Take snapshot";
  snap.className = "jupyter-button mod-primary study-camera-snap";
  snap.disabled = true;
  const video = document.createElement("video");
  video.autoplay = true; video.muted = true; video.playsInline = true;
  video.className = "study-camera-video";
  video.style.maxWidth = "480px"; video.style.display = "block"; video.style.marginTop = "6px";
  const fail = (text) => { model.set("error", text); model.save_changes(); };
  start.addEventListener("click", async () => {
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      fail("This page has no access to a camera: the browser allows it only on HTTPS or localhost pages.");
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
      video.srcObject = stream;
      snap.disabled = false;
      model.set("error", ""); model.set("active", true); model.save_changes();
    } catch (e) {
      fail("The camera is not available: " + reason(e) + ".");
    }
  });
  snap.addEventListener("click", () => {
    if (!video.videoWidth) { fail("The camera has not delivered a picture yet; try again in a moment."); return; }
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    model.set("snapshot", canvas.toDataURL("image/jpeg", 0.9));
    model.set("count", model.get("count") + 1);
    model.save_changes();
  });
  el.append(start, snap, video);
  return () => { if (video.srcObject) video.srcObject.getTracks().forEach((t) => t.stop()); };
}
export default { render };
"""


class CameraSnapshot(anywidget.AnyWidget):
    _esm = _ESM
    snapshot = traitlets.Unicode("").tag(sync=True)  # data:image/jpeg;base64,… of the last snapshot
    count = traitlets.Int(0).tag(sync=True)  # snapshots taken (observe this to react to each one)
    error = traitlets.Unicode("").tag(sync=True)  # why the camera is not available, as a sentence
    active = traitlets.Bool(False).tag(sync=True)
