// Progress on the generate button while the synchronous request runs; no double submits.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("generate-form");
  if (!form) return;
  const button = document.getElementById("generate-button");
  form.addEventListener("submit", (event) => {
    if (form.dataset.busy) { event.preventDefault(); return; }
    form.dataset.busy = "1";
    const started = Date.now();
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    const render = () => {
      const seconds = Math.floor((Date.now() - started) / 1000);
      button.innerHTML = '<span class="spinner" aria-hidden="true"></span> Generating… ' + seconds + " s";
    };
    render();
    setInterval(render, 1000);
  });
});
