// Starts Swagger UI on /api/docs (vendored in /static/swagger-ui/); the page has no inline script.
(function () {
  "use strict";
  function start() {
    var root = document.getElementById("swagger-ui");
    window.ui = SwaggerUIBundle({
      url: root.dataset.openapiUrl,
      dom_id: "#swagger-ui",
      layout: "BaseLayout",
      deepLinking: true,
      showExtensions: true,
      showCommonExtensions: true,
      // The default validator badge loads an image from another site (blocked, and offline).
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
