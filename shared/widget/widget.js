/*
 * Practice Hub booking widget (docs/widget.md). Embed on any site:
 *
 *   <div id="booking"></div>
 *   <script src="https://HUB/widget.js" data-key="pk_…"
 *     data-appointment-type="aty_…" data-target="#booking"></script>
 *
 * Optional: data-redirect="https://…/thanks" (goes there after booking with
 * appointmentId, startAt, endAt, status in the query), data-days="14" (how
 * far ahead to offer slots), data-referral="Google" (the referral source's
 * name; default: the organization's `Website` source).
 *
 * Plain script, no dependency, no build step. It talks to the hub it was
 * loaded from with the publishable key only.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var cfg = {
    key: script.getAttribute("data-key") || "",
    type: script.getAttribute("data-appointment-type") || "",
    target: script.getAttribute("data-target"),
    redirect: script.getAttribute("data-redirect"),
    referral: script.getAttribute("data-referral"),
    days: Math.min(31, Math.max(1, parseInt(script.getAttribute("data-days") || "14", 10) || 14)),
  };
  // The hub's base URL: where this script came from, without `/widget.js`
  // (keeps a stage prefix such as `/Prod` on API Gateway).
  var base = script.src.replace(/\/widget\.js(\?.*)?$/, "");
  var uid = "phw" + Math.random().toString(36).slice(2, 8);

  var CSS =
    ".phw{font:16px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1b1f24;max-width:40rem;box-sizing:border-box}" +
    ".phw *{box-sizing:border-box}" +
    ".phw h2{font-size:1.25rem;margin:0 0 .5rem}" +
    ".phw h3{font-size:1rem;margin:1rem 0 .4rem}" +
    ".phw-day{border-top:1px solid #d1d5db;padding:.25rem 0}" +
    ".phw-day summary{cursor:pointer;font-weight:600;padding:.7rem 0;min-height:44px}" +
    ".phw-day summary:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}" +
    ".phw-day .phw-slots{margin:.25rem 0 .75rem}" +
    ".phw-slots{display:flex;flex-wrap:wrap;gap:.5rem;list-style:none;margin:0;padding:0}" +
    ".phw button{font:inherit;min-height:44px;padding:.5rem .9rem;border-radius:6px;border:1px solid #0b5cad;background:#fff;color:#0b5cad;cursor:pointer}" +
    ".phw button[aria-pressed=true]{background:#0b5cad;color:#fff}" +
    ".phw button:focus-visible,.phw input:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}" +
    ".phw button:disabled{opacity:.6;cursor:default}" +
    ".phw .phw-book{background:#0b5cad;color:#fff;margin-top:1rem;width:100%}" +
    ".phw label{display:block;font-weight:600;margin:.75rem 0 .25rem}" +
    ".phw input{font:inherit;width:100%;min-height:44px;padding:.5rem;border:1px solid #6b7280;border-radius:6px}" +
    ".phw input[aria-invalid=true]{border-color:#b91c1c}" +
    ".phw-msg{margin:.75rem 0;padding:.6rem .8rem;border-radius:6px}" +
    ".phw-msg:empty{display:none}" +
    ".phw-msg.phw-err{background:#fef2f2;color:#991b1b;border:1px solid #fecaca}" +
    ".phw-msg.phw-ok{background:#f0fdf4;color:#166534;border:1px solid #bbf7d0}" +
    ".phw-field-err{color:#991b1b;font-size:.9rem;margin:.25rem 0 0}" +
    ".phw-field-err:empty{display:none}";

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (k === "text") e.textContent = attrs[k];
        else if (k === "class") e.className = attrs[k];
        else e.setAttribute(k, attrs[k]);
      }
    }
    (children || []).forEach(function (c) {
      if (c) e.appendChild(c);
    });
    return e;
  }

  function idemKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return uid + "-" + Date.now() + "-" + Math.random().toString(36).slice(2);
  }

  function api(method, path, body, idempotencyKey) {
    var headers = { Authorization: "Bearer " + cfg.key };
    if (body) headers["Content-Type"] = "application/json";
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    return fetch(base + path, {
      method: method,
      headers: headers,
      body: body ? JSON.stringify(body) : undefined,
      credentials: "omit",
      mode: "cors",
    }).then(function (r) {
      return r
        .json()
        .catch(function () {
          return {};
        })
        .then(function (data) {
          return { status: r.status, ok: r.ok, data: data };
        });
    });
  }

  // The visitor's own time zone and clock: `10:30`, always 24-hour so the
  // button's name is the same everywhere.
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  var dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", timeZone: zone });
  var timeFmt = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: zone });
  var dayKeyFmt = new Intl.DateTimeFormat("en-CA", { year: "numeric", month: "2-digit", day: "2-digit", timeZone: zone });
  function hhmm(d) {
    return timeFmt.format(d);
  }

  var root = el("section", { class: "phw", "aria-labelledby": uid + "-title" });
  var title = el("h2", { id: uid + "-title", text: "Book an appointment" });
  var msg = el("div", { class: "phw-msg", role: "status", "aria-live": "polite" });
  var slotsBox = el("div", { role: "group", "aria-labelledby": uid + "-slots-title" });
  var slotsTitle = el("h3", { id: uid + "-slots-title", text: "Choose a time (" + zone + ")" });
  var more = el("button", { type: "button", text: "More times" });
  more.hidden = true;

  function field(name, type, autocomplete) {
    var id = uid + "-" + name.toLowerCase();
    var input = el("input", { id: id, name: name.toLowerCase(), type: type, autocomplete: autocomplete, required: "" });
    var err = el("p", { class: "phw-field-err", id: id + "-err" });
    input.setAttribute("aria-describedby", err.id);
    return { input: input, err: err, wrap: el("div", null, [el("label", { for: id, text: name }), input, err]) };
  }
  var fName = field("Name", "text", "name");
  var fPhone = field("Phone", "tel", "tel");
  var fEmail = field("Email", "email", "email");
  var book = el("button", { type: "submit", class: "phw-book", text: "Book" });
  var form = el("form", { novalidate: "" }, [
    el("h3", { text: "Your details" }),
    fName.wrap,
    fPhone.wrap,
    fEmail.wrap,
    book,
  ]);
  root.appendChild(title);
  root.appendChild(msg);
  root.appendChild(slotsTitle);
  root.appendChild(slotsBox);
  root.appendChild(more);
  root.appendChild(form);

  var state = { slots: [], next: null, query: "", chosen: null, patient: null, busy: false };

  function say(text, kind) {
    msg.textContent = text;
    msg.className = "phw-msg" + (kind ? " phw-" + kind : "");
    msg.setAttribute("role", kind === "err" ? "alert" : "status");
  }

  function renderSlots() {
    slotsBox.textContent = "";
    // One button per start time (several practitioners may be free then).
    var seen = {};
    var days = [];
    var byDay = {};
    state.slots.forEach(function (s) {
      if (seen[s.startAt]) return;
      seen[s.startAt] = true;
      var d = new Date(s.startAt);
      var k = dayKeyFmt.format(d);
      if (!byDay[k]) {
        byDay[k] = [];
        days.push(k);
      }
      byDay[k].push(s);
    });
    if (!days.length) {
      slotsBox.appendChild(el("p", { text: "No free times in the next " + cfg.days + " days." }));
    }
    // A day per disclosure (the first open) keeps the form near at 360 px.
    days.forEach(function (k, i) {
      var first = new Date(byDay[k][0].startAt);
      var hid = uid + "-d" + k;
      var n = byDay[k].length;
      var day = el("details", { class: "phw-day" }, [
        el("summary", { id: hid, text: dayFmt.format(first) + " (" + n + (n === 1 ? " time)" : " times)") }),
      ]);
      var holdsChosen = state.chosen && byDay[k].some(function (s) { return s.startAt === state.chosen.startAt; });
      if (i === 0 || holdsChosen) day.open = true;
      slotsBox.appendChild(day);
      var list = el("ul", { class: "phw-slots", "aria-labelledby": hid });
      byDay[k].forEach(function (s) {
        var d = new Date(s.startAt);
        var chosen = state.chosen && state.chosen.startAt === s.startAt;
        var b = el("button", {
          type: "button",
          "aria-pressed": chosen ? "true" : "false",
          "aria-label": hhmm(d) + ", " + dayFmt.format(d),
          "data-start": s.startAt,
          text: hhmm(d),
        });
        b.addEventListener("click", function () {
          state.chosen = s;
          Array.prototype.forEach.call(slotsBox.querySelectorAll("button"), function (o) {
            o.setAttribute("aria-pressed", o === b ? "true" : "false");
          });
          say("Selected " + dayFmt.format(d) + " at " + hhmm(d) + ".", "");
        });
        list.appendChild(el("li", null, [b]));
      });
      day.appendChild(list);
    });
    more.hidden = !state.next;
  }

  // Pages of `GET /v1/availability` (cursors: `next`, `$after`) until
  // enough slots for a first view; "More times" fetches the rest.
  var ENOUGH = 60;
  function loadSlots(after) {
    // A cursor belongs to the query that made it: "More times" repeats the
    // window of the first page; a fresh load starts a new one.
    if (!after) {
      var from = new Date(Date.now() + 60 * 1000);
      var to = new Date(from.getTime() + cfg.days * 86400000);
      state.query =
        "appointmentTypeId=" + encodeURIComponent(cfg.type) +
        "&from=" + encodeURIComponent(from.toISOString()) +
        "&to=" + encodeURIComponent(to.toISOString());
    }
    var query = state.query;
    var got = [];
    function page(cursor) {
      var q = query + (cursor ? "&$after=" + encodeURIComponent(cursor) : "");
      return api("GET", "/v1/availability?" + q).then(function (r) {
        if (!r.ok) throw r;
        got = got.concat(r.data.data || []);
        var next = r.data.next || null;
        if (next && got.length < ENOUGH) return page(next);
        return next;
      });
    }
    return page(after).then(function (next) {
      state.slots = after ? state.slots.concat(got) : got;
      state.next = next;
      if (state.chosen && !state.slots.some(function (s) { return s.startAt === state.chosen.startAt; })) {
        state.chosen = null;
      }
      renderSlots();
    });
  }

  function fail(r) {
    var m = (r && r.data && r.data.message) || "Something went wrong. Please try again.";
    say(m, "err");
  }

  more.addEventListener("click", function () {
    if (state.next) loadSlots(state.next).catch(fail);
  });

  var FIELD_OF = { fullName: fName, primaryPhoneNumber: fPhone, emailAddress: fEmail };
  function clearFieldErrors() {
    [fName, fPhone, fEmail].forEach(function (f) {
      f.err.textContent = "";
      f.input.removeAttribute("aria-invalid");
    });
  }
  function showFieldErrors(errors) {
    var shown = false;
    (errors || []).forEach(function (e) {
      var f = FIELD_OF[e.field];
      if (f) {
        f.err.textContent = e.message;
        f.input.setAttribute("aria-invalid", "true");
        if (!shown) f.input.focus();
        shown = true;
      }
    });
    return shown;
  }

  function contact() {
    return {
      name: fName.input.value.trim(),
      phone: fPhone.input.value.trim(),
      email: fEmail.input.value.trim(),
    };
  }

  function tracking() {
    var t = { landingPage: location.origin + location.pathname };
    var p = new URLSearchParams(location.search);
    ["source", "medium", "campaign", "term", "content"].forEach(function (k) {
      var v = p.get("utm_" + k);
      if (v) t[k] = v;
    });
    ["gclid", "fbclid", "msclkid"].forEach(function (k) {
      var v = p.get(k);
      if (v) t[k] = v;
    });
    return t;
  }

  // The patient of this visitor: created once per contact details, so a
  // second try (after a slot was taken) does not create another one.
  function ensurePatient(c, slot) {
    var sig = c.name + "\n" + c.phone + "\n" + c.email;
    if (state.patient && state.patient.sig === sig) return Promise.resolve(state.patient.id);
    var body = {
      fullName: c.name,
      primaryPhoneNumber: c.phone,
      emailAddress: c.email,
      primaryClinicId: slot.clinicId,
      tracking: tracking(),
    };
    if (cfg.referral) body.referralName = cfg.referral;
    return api("POST", "/v1/patients", body, idemKey()).then(function (r) {
      if (!r.ok) throw r;
      state.patient = { sig: sig, id: r.data.id };
      return r.data.id;
    });
  }

  function booked(apt) {
    var detail = { appointmentId: apt.id, startAt: apt.startAt, endAt: apt.endAt, status: apt.status };
    var d = new Date(apt.startAt);
    form.hidden = true;
    slotsBox.hidden = true;
    slotsTitle.hidden = true;
    more.hidden = true;
    say("Booked: " + dayFmt.format(d) + " at " + hhmm(d) + ". Thank you!", "ok");
    msg.setAttribute("tabindex", "-1");
    msg.focus();
    document.dispatchEvent(new CustomEvent("practicehub:booked", { detail: detail, bubbles: true }));
    var message = { type: "practicehub:booked" };
    for (var k in detail) message[k] = detail[k];
    var origin = location.origin && location.origin !== "null" ? location.origin : "*";
    window.postMessage(message, origin);
    if (cfg.redirect) {
      var u = new URL(cfg.redirect, location.href);
      for (var j in detail) u.searchParams.set(j, detail[j]);
      location.assign(u.toString());
    }
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (state.busy) return;
    clearFieldErrors();
    var slot = state.chosen;
    if (!slot) {
      say("Please choose a time first.", "err");
      var firstSlot = slotsBox.querySelector("details[open] button");
      if (firstSlot) firstSlot.focus();
      return;
    }
    var c = contact();
    var missing = [];
    if (!c.name) missing.push({ field: "fullName", message: "Please enter your name." });
    if (!c.phone) missing.push({ field: "primaryPhoneNumber", message: "Please enter your phone number." });
    if (!c.email) missing.push({ field: "emailAddress", message: "Please enter your email address." });
    if (missing.length) {
      showFieldErrors(missing);
      say("Please fill in your details.", "err");
      return;
    }
    state.busy = true;
    book.disabled = true;
    say("Booking…", "");
    ensurePatient(c, slot)
      .then(function (patientId) {
        return api(
          "POST",
          "/v1/appointments",
          {
            patientId: patientId,
            practitionerId: slot.practitionerId,
            clinicId: slot.clinicId,
            appointmentTypeId: cfg.type,
            startAt: slot.startAt,
          },
          idemKey()
        );
      })
      .then(function (r) {
        if (r.status === 409) {
          state.chosen = null;
          return loadSlots().then(function () {
            say("Sorry, that time was just taken. Please choose another time below.", "err");
            var b = slotsBox.querySelector("details[open] button");
            if (b) b.focus();
          });
        }
        if (!r.ok) throw r;
        booked(r.data);
      })
      .catch(function (r) {
        if (r && r.data && showFieldErrors(r.data.errors)) {
          say("Please check your details.", "err");
        } else {
          fail(r);
        }
      })
      .then(function () {
        state.busy = false;
        book.disabled = false;
      });
  });

  function mount() {
    var host = cfg.target ? document.querySelector(cfg.target) : null;
    if (host) host.appendChild(root);
    else script.parentNode.insertBefore(root, script.nextSibling);
    if (!document.getElementById("phw-style")) {
      document.head.appendChild(el("style", { id: "phw-style", text: CSS }));
    }
    if (!cfg.key || !cfg.type) {
      say("This booking form is missing its data-key or data-appointment-type.", "err");
      form.hidden = true;
      return;
    }
    say("Loading free times…", "");
    api("GET", "/v1/appointment-types/" + encodeURIComponent(cfg.type))
      .then(function (r) {
        if (r.ok && r.data.name) title.textContent = "Book: " + r.data.name;
        return loadSlots();
      })
      .then(function () {
        say("", "");
      })
      .catch(fail);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
  else mount();
})();
