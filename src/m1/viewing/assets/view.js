// m1 view: the filter form applies itself when a choice changes (Enter applies the search box),
// and leaves empty fields out of the address, so that a filtered list has a short, stable URL.
(function () {
  "use strict";
  var form = document.getElementById("filters");
  if (!form) { return; }
  function fields(enabled) {
    Array.prototype.forEach.call(form.elements, function (field) {
      if (enabled) { field.disabled = false; }
      else if (field.name && field.type !== "checkbox" && field.value === "") { field.disabled = true; }
    });
  }
  form.addEventListener("submit", function () { fields(false); });
  // Back to a page kept in the browser's cache: its fields were disabled for the last submit.
  window.addEventListener("pageshow", function () { fields(true); });
  form.addEventListener("change", function (event) {
    if (event.target && event.target.name !== "q") { form.requestSubmit(); }
  });
})();
