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

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("generate-form");
  if (form) setupGenerateForm(form);
  setupCopyButtons();
  setupConfirmations();
});
