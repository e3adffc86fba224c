// Pages show times in the viewer's time zone. The server renders them in the zone of the
// `callsite_tz` cookie (callsite/middleware.py); this sets the cookie to the browser's zone,
// so every page after the first is in it. The zone in use is named in the page's header.
(function () {
  "use strict";
  const script = document.currentScript;
  const shown = script ? script.dataset.timeZone : "";
  let zone = "";
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    return;
  }
  if (zone && zone !== shown) {
    const secure = window.location.protocol === "https:" ? "; Secure" : "";
    document.cookie = `callsite_tz=${encodeURIComponent(zone)}; path=/; max-age=31536000; SameSite=Lax${secure}`;
  }
})();
