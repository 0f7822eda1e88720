// Forms that ask before they submit (data-confirm): a script here, not an inline handler, so
// the Content-Security-Policy can forbid inline script.
(function () {
  "use strict";
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
})();

// Show only the credential fields of the chosen service (without JavaScript all are shown,
// and the server reads only the chosen service's fields).
(function () {
  "use strict";
  var select = document.getElementById("ob-service");
  if (!select) return;
  function update() {
    document.querySelectorAll("fieldset[data-service]").forEach(function (fs) {
      fs.hidden = fs.dataset.service !== select.value;
    });
  }
  select.addEventListener("change", update);
  update();
})();
