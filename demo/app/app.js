// The demo app's redirect page (redirect_uri): fhirclient exchanges the
// code for a token (PKCE), then the app reads the patient in context and
// their records through the guarded FHIR API, and tries one request the
// token does not allow.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const show = (id) => { $(id).hidden = false; };
  const add = (list, text) => {
    const li = document.createElement("li");
    li.textContent = text;
    list.appendChild(li);
  };
  const humanName = (p) => {
    const n = (p.name || [])[0] || {};
    return n.text || [].concat(n.given || [], n.family || []).join(" ") || p.id;
  };
  const tag = (bundle, system) => {
    const t = ((bundle.meta || {}).tag || []).find((x) => x.system === system);
    if (!t) return "(not reported)";
    try { return decodeURIComponent(t.code); } catch (e) { return t.code; }
  };

  async function run(client) {
    const tr = client.state.tokenResponse || {};
    const token = $("token");
    for (const [k, v] of [
      ["Scopes", tr.scope],
      ["Patient in context", tr.patient || "(none)"],
      ["Signed-in user", tr.id_token ? String(client.getFhirUser() || "") : "(no id_token)"],
      ["Expires in", tr.expires_in + " seconds"],
    ]) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      token.append(dt, dd);
    }
    show("token-section");

    const patient = await client.patient.read();
    $("patient-name").textContent = humanName(patient) + ", born " + (patient.birthDate || "unknown") +
      " (" + (patient.gender || "gender unknown") + ")";
    show("patient-section");

    // No patient in the query: the guard confines the search itself.
    const asked = "Observation?_count=50";
    const obs = await client.request(asked);
    $("obs-asked").textContent = asked;
    $("obs-received").textContent = tag(obs, "urn:smartauth-demo:upstream-request");
    $("obs-header").textContent = "X-Smart-Patient: " + tag(obs, "urn:smartauth-demo:x-smart-patient");
    for (const e of obs.entry || []) {
      const o = e.resource;
      const tr = document.createElement("tr");
      const q = o.valueQuantity || {};
      for (const text of [o.effectiveDateTime || "", (o.code || {}).text || "", q.value + " " + (q.unit || "")]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      $("observations").appendChild(tr);
    }
    show("obs-section");

    const conds = await client.request("Condition");
    for (const e of conds.entry || []) add($("conditions"), "Condition: " + (e.resource.code || {}).text);
    const meds = await client.request("MedicationRequest");
    for (const e of meds.entry || []) add($("medications"), "Medication: " + (e.resource.medicationCodeableConcept || {}).text);
    show("lists-section");

    try {
      await client.create({ resourceType: "Observation", status: "final", code: { text: "Demo" },
        subject: { reference: "Patient/" + client.patient.id } });
      $("refused").textContent = "The write was accepted, which it should not have been.";
    } catch (err) {
      const resp = err.response;
      const status = err.status || (resp && resp.status);
      // The guard says why in WWW-Authenticate (exposed to apps by CORS).
      const why = ((resp && resp.headers.get("WWW-Authenticate")) || "").match(/error_description="([^"]*)"/);
      $("refused").textContent = "Refused: " + status + " " + ((resp && resp.statusText) || "") +
        (why ? " — the guard says: " + why[1] : "");
      $("refused").className = "refused";
      $("refused").dataset.status = String(status);
    }
    show("refused-section");
    $("status").textContent = "Connected to " + client.state.serverUrl + ".";
    $("status").dataset.done = "true";
  }

  FHIR.oauth2.ready().then(run).catch(function (err) {
    $("status").textContent = "The app could not finish: " + err.message;
    $("status").className = "refused";
    $("status").dataset.done = "error";
  });
})();
