{#- Records script errors and failed resources, and whether every image decoded, as attributes on
    <body>; a headless browser's `--dump-dom` then shows them (the report's browser test reads them). #}
(function () {
  var errors = [];
  function show() {
    if (document.body) { document.body.setAttribute("data-errors", JSON.stringify(errors)); }
  }
  window.addEventListener("error", function (event) {
    var target = event.target;
    errors.push(target && target !== window && target.tagName
      ? "failed to load <" + target.tagName.toLowerCase() + ">"
      : String(event.message || "error"));
    show();
  }, true);
  var consoleError = console.error;
  console.error = function () {
    errors.push(Array.prototype.join.call(arguments, " "));
    show();
    return consoleError.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    var images = Array.prototype.slice.call(document.images);
    var ok = images.every(function (img) { return img.complete && img.naturalWidth > 0; });
    document.body.setAttribute("data-images", String(images.length));
    document.body.setAttribute("data-images-ok", ok ? "true" : "false");
    show();
  });
})();
