// Cluster annotation page: talks to /api/state, /api/assign and /image/... (see app.py).
"use strict";

const view = {
  state: null,      // last /api/state answer
  sample: 0,        // index of the sample on screen
  classIndex: 0,    // index into state.classes of the selected class
  version: 0,       // bumped after each assignment so labelled images are fetched again
};

function showStatus(text, isError) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

async function fetchJson(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.error || `${response.status} ${response.statusText}`);
  }
  return body;
}

function imageUrl(kind, layer, sample) {
  const base = `/image/${kind}/${encodeURIComponent(layer)}/${sample}.png`;
  return kind === "labelled" ? `${base}?v=${view.version}` : base;
}

function buildPalette() {
  const palette = document.getElementById("palette");
  palette.replaceChildren();
  view.state.classes.forEach((cls, index) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "class-button";
    button.setAttribute("role", "radio");
    button.title = index < 9 ? `key ${index + 1}` : "";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = cls.color;
    const label = document.createElement("span");
    label.textContent = cls.name;
    button.append(swatch, label);
    button.addEventListener("click", () => selectClass(index));
    palette.append(button);
  });
  selectClass(view.classIndex);
}

function selectClass(index) {
  if (index < 0 || index >= view.state.classes.length) return;
  view.classIndex = index;
  document.querySelectorAll(".class-button").forEach((button, i) => {
    button.classList.toggle("selected", i === index);
    button.setAttribute("aria-checked", String(i === index));
  });
}

function buildRows() {
  const body = document.querySelector("#layers tbody");
  body.replaceChildren();
  for (const layer of view.state.layers) {
    const row = document.createElement("tr");
    row.dataset.layer = layer.name;
    const info = document.createElement("td");
    const name = document.createElement("div");
    name.className = "layer-name";
    name.textContent = layer.name;
    const size = document.createElement("div");
    size.className = "counter";
    size.textContent = `${layer.resolution} px, ${layer.channels} ch`;
    const counter = document.createElement("div");
    counter.className = "counter unlabelled";
    const legend = document.createElement("ul");
    legend.className = "legend";
    legend.setAttribute("aria-label", `cluster colours of ${layer.name}`);
    info.append(name, size, counter, legend);
    row.append(info);
    // The sample beside every layer, so it stays in view while labelling the lower layers.
    const sampleCell = document.createElement("td");
    const sampleImg = document.createElement("img");
    sampleImg.className = "sample-image";
    sampleImg.alt = "synthesized sample";
    sampleImg.draggable = false;
    sampleCell.append(sampleImg);
    row.append(sampleCell);
    for (const kind of ["clusters", "labelled"]) {
      const cell = document.createElement("td");
      const img = document.createElement("img");
      img.className = `layer-image ${kind}`;
      img.alt = `${kind} of ${layer.name}`;
      img.draggable = false;
      img.addEventListener("click", (event) => assignAt(layer.name, img, event));
      cell.append(img);
      row.append(cell);
    }
    body.append(row);
  }
}

function updateLegend(row, layer) {
  // Cluster colour -> id (and its class, when labelled) for the clusters of this sample.
  const legend = row.querySelector(".legend");
  legend.replaceChildren();
  for (const entry of layer.legend ?? []) {
    const item = document.createElement("li");
    item.dataset.cluster = String(entry.cluster);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = entry.color;
    const className = layer.mapping[String(entry.cluster)];
    const text = document.createElement("span");
    text.textContent = `${entry.cluster}` + (className === undefined ? "" : ` ${className}`);
    item.append(swatch, text);
    legend.append(item);
  }
}

function updateCounters() {
  for (const layer of view.state.layers) {
    const row = document.querySelector(`tr[data-layer="${CSS.escape(layer.name)}"]`);
    if (row === null) continue;  // rows are built after the first state arrives
    const counter = row.querySelector(".unlabelled");
    const here = layer.unlabelled_in_sample;
    counter.textContent = `${layer.unlabelled} unlabelled` +
      (here === undefined ? "" : ` (${here} in this sample)`);
    counter.classList.toggle("done", layer.unlabelled === 0);
    updateLegend(row, layer);
  }
}

function showSample() {
  const state = view.state;
  document.getElementById("sample-counter").textContent =
    `sample ${view.sample + 1} / ${state.num_samples}`;
  // One URL for every row: the browser fetches the sample once.
  const sampleUrl = imageUrl("sample", state.layers[0].name, view.sample);
  for (const layer of state.layers) {
    const row = document.querySelector(`tr[data-layer="${CSS.escape(layer.name)}"]`);
    row.querySelector("img.sample-image").src = sampleUrl;
    row.querySelector("img.clusters").src = imageUrl("clusters", layer.name, view.sample);
    row.querySelector("img.labelled").src = imageUrl("labelled", layer.name, view.sample);
  }
}

async function refreshState() {
  const sample = view.sample;
  const state = await fetchJson(`/api/state?sample=${sample}`);
  // Arrow keys can outrun the server: drop answers for a sample no longer on screen.
  if (view.state !== null && sample !== view.sample) return;
  view.state = state;
  updateCounters();
}

async function goTo(sample) {
  const count = view.state.num_samples;
  view.sample = ((sample % count) + count) % count;
  showSample();
  try {
    await refreshState();
  } catch (error) {
    showStatus(error.message, true);
  }
}

async function assignAt(layer, img, event) {
  // Click position in the served image's pixels (the image may be shown scaled by CSS).
  const rect = img.getBoundingClientRect();
  const clamp = (v, n) => Math.min(n - 1, Math.max(0, Math.floor(v)));
  const x = clamp((event.clientX - rect.left) * img.naturalWidth / rect.width, img.naturalWidth);
  const y = clamp((event.clientY - rect.top) * img.naturalHeight / rect.height,
                  img.naturalHeight);
  const cls = view.state.classes[view.classIndex].name;
  try {
    const answer = await fetchJson("/api/assign", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({layer, sample: view.sample, x, y, class: cls}),
    });
    showStatus(`${layer}: cluster ${answer.cluster} -> ${answer.class ?? "unlabelled"} (saved)`);
    view.version += 1;
    const row = document.querySelector(`tr[data-layer="${CSS.escape(layer)}"]`);
    row.querySelector("img.labelled").src = imageUrl("labelled", layer, view.sample);
    await refreshState();
  } catch (error) {
    showStatus(`not saved: ${error.message}`, true);
  }
}

function onKey(event) {
  if (event.target instanceof HTMLInputElement) return;
  if (event.key === "ArrowLeft") {
    event.preventDefault();
    goTo(view.sample - 1);
  } else if (event.key === "ArrowRight") {
    event.preventDefault();
    goTo(view.sample + 1);
  } else if (/^[1-9]$/.test(event.key)) {
    selectClass(Number(event.key) - 1);
  }
}

async function start() {
  try {
    await refreshState();
  } catch (error) {
    showStatus(`cannot load the run: ${error.message}`, true);
    return;
  }
  buildPalette();
  buildRows();
  updateCounters();
  showSample();
  document.getElementById("previous").addEventListener("click", () => goTo(view.sample - 1));
  document.getElementById("next").addEventListener("click", () => goTo(view.sample + 1));
  document.addEventListener("keydown", onKey);
  showStatus("ready");
}

document.addEventListener("DOMContentLoaded", start);
