// The console's only script (embedded; the CSP allows no other). Everything
// works without it: it only reloads a page every 30 s while it is visible,
// so counts and approvals stay current on a dashboard left open.
(function () {
  "use strict";
  var secs = parseInt(document.body.getAttribute("data-refresh") || "", 10);
  if (!secs) { return; }
  setInterval(function () {
    if (document.visibilityState === "visible") { window.location.reload(); }
  }, secs * 1000);
})();
