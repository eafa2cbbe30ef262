// m1 view: the filter form applies itself when a choice changes (Enter applies the search box),
// and leaves empty fields out of the address, so that a filtered list has a short, stable URL.
(function () {
  "use strict";
  var form = document.getElementById("filters");
  if (!form) { return; }
  form.addEventListener("submit", function () {
    Array.prototype.forEach.call(form.elements, function (field) {
      if (field.name && field.type !== "checkbox" && field.value === "") { field.disabled = true; }
    });
  });
  form.addEventListener("change", function (event) {
    if (event.target && event.target.name !== "q") { form.requestSubmit(); }
  });
})();
