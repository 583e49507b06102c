// Enhancements for the pages; every page also works without this file.
"use strict";

const TUNABLE = ["negative_prompt", "width", "height", "steps", "cfg_scale"];
const BASE_PRESETS = [
  ["Square", 1024, 1024],
  ["Portrait", 832, 1216],
  ["Landscape", 1216, 832],
];

function formatNumber(value) {
  return String(Number(value));
}

// As app.spending.dollars(): cents from a dollar up, up to four decimals below one.
function formatDollars(amount) {
  if (amount >= 1) return `$${amount.toFixed(2)}`;
  return `$${amount.toFixed(4).replace(/(\.\d\d[1-9]?)0*$/, "$1")}`;
}

// ---- Generate form ---------------------------------------------------------------------------

function setupGenerateForm(form) {
  const dataBlock = document.getElementById("providers-data");
  const providers = dataBlock ? JSON.parse(dataBlock.textContent) : [];
  const providerSelect = form.elements.provider;
  const modelSelect = form.elements.model;
  const input = (name) => form.elements[name];
  const wrapper = (name) => form.querySelector(`[data-field="${name}"]`);

  // Remember the general rules the server rendered, to restore them after a narrower model.
  for (const name of TUNABLE) {
    const el = input(name);
    el.dataset.baseMin = el.min;
    el.dataset.baseMax = el.max;
  }

  const providerByName = (name) => providers.find((p) => p.name === name) || providers[0];
  const currentModel = () => {
    const provider = providerByName(providerSelect.value);
    const name = modelSelect.value || provider.default_model;
    return provider.models.find((m) => m.name === name) || provider.models[0];
  };

  function rebuildModels(keep) {
    const provider = providerByName(providerSelect.value);
    const fallback = provider.models.find((m) => m.name === provider.default_model);
    modelSelect.replaceChildren();
    modelSelect.append(new Option(`Default (${fallback ? fallback.label : provider.default_model})`, ""));
    for (const model of provider.models) {
      modelSelect.append(new Option(model.label, model.name));
    }
    modelSelect.value = provider.models.some((m) => m.name === keep) ? keep : "";
    for (const item of document.querySelectorAll("#provider-status [data-provider]")) {
      item.classList.toggle("current", item.dataset.provider === provider.name);
    }
  }

  function limitsText(name, model) {
    const el = input(name);
    if (model.ignores.includes(name)) return `Ignored by ${model.label}.`;
    const limit = model.limits[name];
    if (limit) return `${formatNumber(limit.minimum)}–${formatNumber(limit.maximum)} on ${model.label}.`;
    if ((name === "width" || name === "height") && model.sizes.length) {
      return `${model.label} makes ${model.sizes.length} sizes; others map to the nearest.`;
    }
    const step = name === "width" || name === "height" ? `, multiple of ${el.step}` : "";
    return `${el.dataset.baseMin}–${el.dataset.baseMax}${step}.`;
  }

  function applyModel() {
    const model = currentModel();
    for (const name of TUNABLE) {
      const el = input(name);
      const ignored = model.ignores.includes(name);
      const limit = model.limits[name];
      el.disabled = ignored;
      if (name !== "negative_prompt") {
        el.min = limit ? limit.minimum : el.dataset.baseMin;
        el.max = limit ? limit.maximum : el.dataset.baseMax;
      }
      const range = document.getElementById(`${name}-range`);
      if (range) {
        range.disabled = ignored;
        range.min = el.min;
        range.max = el.max;
      }
      const box = wrapper(name);
      box.classList.toggle("is-ignored", ignored);
      const text = box.querySelector("[data-limits-for]");
      if (text) text.textContent = limitsText(name, model);
      checkRange(name);
    }
    const notes = document.getElementById("model-notes");
    if (notes) notes.textContent = model.notes || "";
    showOptions(`${providerByName(providerSelect.value).name}|${model.name}`);
    const provider = providerByName(providerSelect.value);
    const status = document.getElementById("provider-status");
    if (status) status.classList.toggle("warn", !provider.configured);
    buildPresets(model);
    showEstimate();
  }

  // The estimate before spending: count × the model's price, as the server reckons it.
  function showEstimate() {
    const value = document.getElementById("cost-value");
    if (!value) return;
    const model = currentModel();
    const price = model.price || {};
    const countInput = input("count");
    const count = Math.max(1, Number(countInput && countInput.value) || 1);
    let each = price.per_image;
    if (price.basis === "tokens" && price.by_quality) {
      const quality = form.querySelector("[data-options-for]:not([hidden]) [data-option='quality'] select");
      const chosen = quality && price.by_quality[quality.value];
      const area = (Number(input("width").value) || 1024) * (Number(input("height").value) || 1024);
      each = (chosen !== undefined && chosen !== null ? chosen : each) * area / (1024 * 1024);
    }
    if (price.steps_included && each !== null && each !== undefined) {
      each *= Math.max(Number(input("steps").value) || 0, price.steps_included) / price.steps_included;
    }
    if (each === null || each === undefined) {
      value.textContent = "unknown";
    } else {
      value.textContent = count > 1
        ? `${formatDollars(each * count)} (${count} × ${formatDollars(each)})`
        : formatDollars(each);
    }
    const note = document.getElementById("cost-note");
    if (note) note.textContent = price.note || "";
    for (const balance of document.querySelectorAll("[data-balance-for]")) {
      balance.hidden = balance.dataset.balanceFor !== providerSelect.value;
    }
  }
  form.addEventListener("input", showEstimate);
  form.addEventListener("change", showEstimate);
  // Model options: only the chosen model's fields are shown and sent.
  function showOptions(key) {
    let any = false;
    for (const group of form.querySelectorAll("[data-options-for]")) {
      const current = group.dataset.optionsFor === key;
      group.hidden = !current;
      any = any || current;
      for (const el of group.querySelectorAll("input, select")) el.disabled = !current;
    }
    const none = document.getElementById("no-options");
    if (none) none.hidden = any;
  }

  function checkRange(name) {
    const el = input(name);
    const text = wrapper(name).querySelector("[data-limits-for]");
    if (!text || el.disabled || el.value === "" || el.type !== "number") return;
    const value = Number(el.value);
    const outside = (el.min !== "" && value < Number(el.min)) || (el.max !== "" && value > Number(el.max));
    text.classList.toggle("out-of-range", outside);
  }

  // Size presets: square, portrait, landscape and the model's own sizes.
  const presetBox = document.getElementById("size-presets");
  function buildPresets(model) {
    if (!presetBox) return;
    const seen = new Set();
    const presets = [];
    for (const [label, w, h] of BASE_PRESETS) {
      presets.push([label, w, h]);
      seen.add(`${w}x${h}`);
    }
    for (const [w, h] of model.sizes) {
      if (!seen.has(`${w}x${h}`)) presets.push(["", w, h]);
      seen.add(`${w}x${h}`);
    }
    presetBox.replaceChildren();
    const ignored = model.ignores.includes("width") && model.ignores.includes("height");
    for (const [label, w, h] of presets) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "chip";
      button.dataset.width = w;
      button.dataset.height = h;
      button.disabled = ignored;
      button.innerHTML = label ? `<b></b> <span></span>` : `<span></span>`;
      if (label) button.querySelector("b").textContent = label;
      button.querySelector("span").textContent = `${w}×${h}`;
      button.addEventListener("click", () => {
        input("width").value = w;
        input("height").value = h;
        markPreset();
        checkRange("width");
        checkRange("height");
      });
      presetBox.append(button);
    }
    markPreset();
  }
  function markPreset() {
    if (!presetBox) return;
    for (const button of presetBox.querySelectorAll("button")) {
      const on = button.dataset.width === input("width").value && button.dataset.height === input("height").value;
      button.setAttribute("aria-pressed", on ? "true" : "false");
    }
  }
  input("width").addEventListener("input", () => { markPreset(); checkRange("width"); });
  input("height").addEventListener("input", () => { markPreset(); checkRange("height"); });

  // Sliders paired with their number inputs (only the number input has a name).
  for (const range of form.querySelectorAll("input[type=range][data-range-for]")) {
    const number = document.getElementById(range.dataset.rangeFor);
    range.tabIndex = -1; // the number input is the keyboard control; the slider is for pointers
    range.addEventListener("input", () => {
      number.value = range.value;
      checkRange(number.name);
    });
    number.addEventListener("input", () => {
      if (number.value !== "") range.value = number.value;
      checkRange(number.name);
    });
  }

  // Character counters.
  for (const counter of form.querySelectorAll("[data-counter-for]")) {
    const field = document.getElementById(counter.dataset.counterFor);
    const max = Number(counter.dataset.max);
    const update = () => {
      counter.textContent = `${field.value.length} / ${max}`;
      counter.classList.toggle("over", field.value.length > max);
    };
    field.addEventListener("input", update);
    update();
  }

  // Seed: typing one turns "random" off; turning "random" on clears it.
  const seed = input("seed");
  const random = input("random_seed");
  seed.addEventListener("input", () => {
    if (seed.value !== "" && Number(seed.value) !== 0) random.checked = false;
  });
  random.addEventListener("change", () => {
    if (random.checked) seed.value = "";
  });

  providerSelect.addEventListener("change", () => { rebuildModels(modelSelect.value); applyModel(); });
  modelSelect.addEventListener("change", applyModel);
  if (providers.length) {
    rebuildModels(modelSelect.value);
    applyModel();
  }

  // While the synchronous request runs: spinner, elapsed seconds, no second submit.
  const button = document.getElementById("generate-button");
  const status = document.getElementById("generate-status");
  const idleLabel = button.innerHTML;
  let timer = null;
  form.addEventListener("submit", (event) => {
    if (form.dataset.busy) {
      event.preventDefault();
      return;
    }
    form.dataset.busy = "1";
    const started = Date.now();
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    button.innerHTML = '<span class="spinner" aria-hidden="true"></span> <span class="label">Generating…</span> <span class="elapsed">0 s</span>';
    const elapsed = button.querySelector(".elapsed");
    const count = Number(input("count") ? input("count").value : 1) || 1;
    if (status) {
      status.textContent = count > 1
        ? `Generating ${count} images at once; this can take up to a minute.`
        : "Generating the image; this can take up to a minute.";
    }
    timer = setInterval(() => {
      elapsed.textContent = `${Math.floor((Date.now() - started) / 1000)} s`;
    }, 250);
  });
  // Coming back with the Back button restores the page from cache: make it usable again.
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) return;
    clearInterval(timer);
    delete form.dataset.busy;
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.innerHTML = idleLabel;
    if (status) status.textContent = "";
  });
}

// ---- Copy buttons and confirmations ----------------------------------------------------------

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
}

function setupCopyButtons() {
  const status = document.getElementById("copy-status");
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", () => {
      const source = document.querySelector(button.dataset.copy);
      const original = button.textContent;
      copyText(source.textContent.trim()).then(
        () => {
          button.textContent = "Copied ✓";
          if (status) status.textContent = button.dataset.copied || "Copied";
        },
        () => {
          if (status) status.textContent = "Copying is not allowed here; select the text instead.";
        },
      ).finally(() => setTimeout(() => { button.textContent = original; }, 1500));
    });
  }
}

function setupConfirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}


// ---- Library: favourites, selection and bulk actions, import by drop, reading a dropped image --
// The page calls the web routes (session cookie + CSRF header), never /api/*: it needs no token.

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

async function send(url, body) {
  const headers = { "X-CSRFToken": csrfToken(), Accept: "application/json" };
  if (!(body instanceof FormData)) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method: "POST", headers, credentials: "same-origin",
    body: body instanceof FormData ? body : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (error) { data = null; }
  if (!response.ok) {
    const detail = data && data.detail;
    const message = Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : detail;
    throw new Error(message || `The server answered ${response.status}.`);
  }
  return data;
}

function fileForm(file) {
  const body = new FormData();
  body.append("file", file, file.name || "image");
  return body;
}

function setupFavorites() {
  for (const form of document.querySelectorAll("form[data-favorite-form]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const value = form.elements.favorite;
      const button = form.querySelector("button");
      try {
        const result = await send(form.action, new FormData(form));
        button.classList.toggle("on", result.favorite);
        button.setAttribute("aria-pressed", String(result.favorite));
        button.setAttribute("aria-label", result.favorite ? "Remove from favourites" : "Add to favourites");
        value.value = result.favorite ? "0" : "1";
      } catch (error) {
        window.alert(error.message);
      }
    });
  }
}

function setupGallery(gallery) {
  const toggle = document.getElementById("select-toggle");
  const bar = document.getElementById("action-bar");
  const countText = document.getElementById("selection-count");
  const selectAll = document.getElementById("select-all");
  const total = Number(gallery.dataset.total);
  const query = gallery.dataset.query;
  const cards = () => Array.from(gallery.querySelectorAll(".grid > li"));
  const selected = new Set();
  let allMatching = false;
  let lastIndex = null;

  function render() {
    for (const card of cards()) {
      const on = allMatching || selected.has(card.dataset.imageId);
      card.classList.toggle("selected", on);
      card.setAttribute("aria-selected", String(on));
    }
    const count = allMatching ? total : selected.size;
    countText.textContent = allMatching ? `All ${total} matching selected` : `${count} selected`;
    for (const button of bar.querySelectorAll("[data-bulk], #bulk-download")) button.disabled = count === 0;
  }

  function setMode(on) {
    gallery.classList.toggle("selecting", on);
    if (toggle) {
      toggle.setAttribute("aria-pressed", String(on));
      toggle.textContent = on ? "Done" : "Select";
    }
    bar.hidden = !on;
    if (!on) { selected.clear(); allMatching = false; lastIndex = null; }
    render();
  }

  if (toggle) toggle.addEventListener("click", () => setMode(!gallery.classList.contains("selecting")));

  gallery.addEventListener("click", (event) => {
    if (!gallery.classList.contains("selecting")) return;
    const card = event.target.closest(".grid > li");
    if (!card || event.target.closest("form")) return;
    event.preventDefault();
    const list = cards();
    const index = list.indexOf(card);
    if (allMatching) {  // narrowing down from "all matching" starts from this page
      allMatching = false;
      for (const item of list) selected.add(item.dataset.imageId);
    }
    if (event.shiftKey && lastIndex !== null) {
      const [from, to] = lastIndex < index ? [lastIndex, index] : [index, lastIndex];
      for (const item of list.slice(from, to + 1)) selected.add(item.dataset.imageId);
    } else if (selected.has(card.dataset.imageId)) {
      selected.delete(card.dataset.imageId);
    } else {
      selected.add(card.dataset.imageId);
    }
    lastIndex = index;
    render();
  });

  document.getElementById("select-page").addEventListener("click", () => {
    allMatching = false;
    for (const card of cards()) selected.add(card.dataset.imageId);
    render();
  });
  if (selectAll) selectAll.addEventListener("click", () => { allMatching = true; render(); });
  document.getElementById("select-none").addEventListener("click", () => {
    allMatching = false;
    selected.clear();
    render();
  });

  const status = document.getElementById("import-status");
  for (const button of bar.querySelectorAll("[data-bulk]")) {
    button.addEventListener("click", async () => {
      const action = button.dataset.bulk;
      const count = allMatching ? total : selected.size;
      const body = allMatching ? { action, filter: query } : { action, ids: Array.from(selected, Number) };
      if (action.endsWith("_collection")) {
        const choice = document.getElementById("bulk-collection").value;
        if (!choice) { window.alert("Choose a collection first."); return; }
        body.collection = Number(choice);
      }
      if (action === "delete" && !window.confirm(`Delete ${count} image${count === 1 ? "" : "s"}? This cannot be undone.`)) return;
      bar.setAttribute("aria-busy", "true");
      try {
        const result = await send(gallery.dataset.bulkUrl, body);
        const failed = result.failed ? `; ${result.failed.length} could not be fully removed` : "";
        status.textContent = `Done: ${result.done} image${result.done === 1 ? "" : "s"}${failed}.`;
        window.location.reload();
      } catch (error) {
        status.textContent = error.message;
      } finally {
        bar.removeAttribute("aria-busy");
      }
    });
  }
  document.getElementById("bulk-download").addEventListener("click", () => {
    const base = gallery.dataset.exportUrl;
    window.location.href = allMatching ? `${base}?${query}` : `${base}?ids=${Array.from(selected).join(",")}`;
  });

  // Files dropped anywhere on the page are imported, one after another.
  const overlay = document.getElementById("drop-overlay");
  let depth = 0;
  const hasFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files");
  document.addEventListener("dragenter", (event) => { if (hasFiles(event)) { depth += 1; overlay.hidden = false; } });
  document.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) overlay.hidden = true; });
  document.addEventListener("dragover", (event) => { if (hasFiles(event)) event.preventDefault(); });
  document.addEventListener("drop", async (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    overlay.hidden = true;
    const files = Array.from(event.dataTransfer.files);
    let imported = 0, duplicates = 0;
    const refused = [];
    for (const [index, file] of files.entries()) {
      status.textContent = `Importing ${index + 1} of ${files.length}: ${file.name}…`;
      try {
        const record = await send(gallery.dataset.importUrl, fileForm(file));
        if (record.created) imported += 1; else duplicates += 1;
      } catch (error) {
        refused.push(`${file.name}: ${error.message}`);
      }
    }
    status.textContent = `Imported ${imported}, skipped ${duplicates} already in the library, refused ${refused.length}.`
      + (refused.length ? ` ${refused.join(" ")}` : "");
    if (imported && !refused.length) window.location.reload();
  });
}

const FOUND_LABELS = [
  ["prompt", "Prompt"], ["negative_prompt", "Negative prompt"], ["seed", "Seed"], ["steps", "Steps"],
  ["cfg_scale", "CFG scale"], ["width", "Width"], ["height", "Height"], ["model", "Model"],
  ["sampler", "Sampler"],
];
const FORMAT_NAMES = {
  a1111: "AUTOMATIC1111", comfyui: "ComfyUI", invokeai: "InvokeAI", fooocus: "Fooocus",
  imagegen: "this app", none: "no tool",
};

function setupPngInfo(form, panel) {
  const result = document.getElementById("png-info-result");
  const title = document.getElementById("png-info-title");
  const list = document.getElementById("png-info-found");
  let found = null;

  function setField(name, value) {
    const el = form.elements[name];
    if (!el || value === undefined || value === null) return;
    el.value = value;
    el.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function show(info, fileName) {
    found = info.parameters || {};
    list.replaceChildren();
    const known = FOUND_LABELS.filter(([key]) => found[key] !== undefined && found[key] !== "");
    title.textContent = known.length
      ? `${fileName}: settings written by ${FORMAT_NAMES[info.format] || info.format}`
      : `${fileName}: no generation settings found`;
    for (const [key, label] of known) {
      const term = document.createElement("dt");
      term.textContent = label;
      const value = document.createElement("dd");
      value.textContent = String(found[key]);
      value.dataset.found = key;
      list.append(term, value);
    }
    for (const button of result.querySelectorAll("[data-apply]")) {
      const kind = button.dataset.apply;
      button.disabled = kind !== "none" && (!known.length || (kind === "seed" && found.seed === undefined)
        || (kind === "prompt" && !found.prompt));
    }
    result.hidden = false;
  }

  async function read(file) {
    title.textContent = `Reading ${file.name}…`;
    result.hidden = false;
    list.replaceChildren();
    try {
      show(await send(panel.dataset.url, fileForm(file)), file.name);
    } catch (error) {
      found = null;
      title.textContent = `${file.name}: ${error.message}`;
      for (const button of result.querySelectorAll("[data-apply]")) button.disabled = button.dataset.apply !== "none";
    }
  }

  function applySeed() {
    if (found.seed === undefined) return;
    setField("seed", found.seed);
    form.elements.random_seed.checked = false;
  }

  for (const button of result.querySelectorAll("[data-apply]")) {
    button.addEventListener("click", () => {
      const kind = button.dataset.apply;
      if (found && kind === "prompt") setField("prompt", found.prompt);
      if (found && kind === "seed") applySeed();
      if (found && kind === "all") {
        for (const name of ["prompt", "negative_prompt", "steps", "cfg_scale", "width", "height"]) {
          setField(name, found[name]);
        }
        applySeed();
        const providerSelect = form.elements.provider;
        if (found.provider && Array.from(providerSelect.options).some((o) => o.value === found.provider)) {
          providerSelect.value = found.provider;
          providerSelect.dispatchEvent(new Event("change"));
        }
        const modelSelect = form.elements.model;
        if (found.model && Array.from(modelSelect.options).some((o) => o.value === found.model)) {
          modelSelect.value = found.model;
          modelSelect.dispatchEvent(new Event("change"));
        }
      }
      result.hidden = true;
    });
  }

  const picker = document.getElementById("png-info-file");
  if (picker) picker.addEventListener("change", () => { if (picker.files[0]) read(picker.files[0]); });
  for (const target of [form, panel]) {
    target.addEventListener("dragover", (event) => {
      if (event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files")) {
        event.preventDefault();
        form.classList.add("drop-target");
      }
    });
    target.addEventListener("dragleave", () => form.classList.remove("drop-target"));
    target.addEventListener("drop", (event) => {
      if (!event.dataTransfer || !event.dataTransfer.files.length) return;
      event.preventDefault();
      form.classList.remove("drop-target");
      read(event.dataTransfer.files[0]);
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("generate-form");
  if (form) setupGenerateForm(form);
  const pngInfo = document.getElementById("png-info");
  if (form && pngInfo) setupPngInfo(form, pngInfo);
  const gallery = document.getElementById("gallery");
  if (gallery) setupGallery(gallery);
  setupFavorites();
  setupCopyButtons();
  setupConfirmations();
});
