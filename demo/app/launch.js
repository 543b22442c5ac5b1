// The demo app's launch page (launch_uri). An EHR launch arrives with
// ?iss={FHIR base}&launch={id}; a standalone launch with ?iss= only.
// fhirclient reads the server's .well-known/smart-configuration, makes the
// PKCE values and sends the browser to the authorization endpoint.
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const status = document.getElementById("status");
  if (!params.get("iss")) {
    status.textContent = "Start this app from the launcher, or open launch?iss=<FHIR base URL> for a standalone launch.";
    return;
  }
  // An EHR launch gets its patient from the launch; a standalone launch
  // asks the user to pick one.
  const context = params.get("launch") ? "launch" : "launch/patient";
  FHIR.oauth2.authorize({
    clientId: "demo-browser-app",
    scope: context + " openid fhirUser patient/*.rs",
    redirectUri: "callback",
    pkceMode: "required",
  }).catch(function (err) {
    status.textContent = "The launch failed: " + err.message;
    status.className = "refused";
  });
})();
