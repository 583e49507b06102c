// Swagger UI for /api/openapi.json, from files the app serves itself (works with no internet).
// The bundled Swagger UI 4 renders OpenAPI 3.0 only; the document keeps to the subset that 3.0
// and 3.1 share, so it is handed over labelled 3.0.3 for display.
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  fetch(root.dataset.specUrl, { headers: { Accept: "application/json" } })
    .then((response) => {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    })
    .then((spec) => {
      spec.openapi = "3.0.3";
      window.ui = window.SwaggerUIBundle({
        spec: spec,
        domNode: root,
        deepLinking: true,
        validatorUrl: null,
        tryItOutEnabled: false,
        displayRequestDuration: true,
        defaultModelsExpandDepth: 0,
        presets: [window.SwaggerUIBundle.presets.apis],
        layout: "BaseLayout",
      });
    })
    .catch((error) => {
      root.textContent = "Could not load the API document (" + error.message + ").";
    });
});
