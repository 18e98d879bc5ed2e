// The console without a reload: polls the live parts (every 2 s while the tab is visible),
// keeps open invocations open, and runs actions in place. Without this script the page
// still reads and its forms still work.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var live = document.getElementById("live");
  var list = document.getElementById("invocation-list");
  var filters = document.getElementById("filters");
  var result = document.getElementById("result");
  if (!live || !list) return;
  var every = 2000, timer = null, busy = false;

  function query() {
    var params = new URLSearchParams(filters ? new FormData(filters) : undefined);
    params.forEach(function (value, key) { if (!value) params.delete(key); });
    var text = params.toString();
    return text ? "?" + text : "";
  }

  // Someone typing into a form of the polled part (a table's rewind): leave that part be.
  function editing(target) {
    var active = document.activeElement;
    return !!(active && active.form && active.tagName !== "BUTTON" && target.contains(active));
  }

  function swap(target, fresh) {
    var open = {};
    target.querySelectorAll("details[open]").forEach(function (d) { open[d.id] = true; });
    var known = {};
    target.querySelectorAll("details.inv").forEach(function (d) { known[d.id] = true; });
    // What was typed into an open form outlives the swap (by form id and field name).
    var typed = {};
    target.querySelectorAll("details[open] form[id]").forEach(function (f) {
      typed[f.id] = Array.prototype.map.call(f.elements, function (e) {
        return [e.name, e.type === "checkbox" ? e.checked : e.value];
      });
    });
    target.replaceChildren.apply(target, Array.prototype.slice.call(fresh.childNodes));
    target.querySelectorAll("details[id]").forEach(function (d) {
      if (open[d.id]) d.open = true;
      if (d.classList.contains("inv") && !known[d.id] && Object.keys(known).length) d.classList.add("new");
    });
    Object.keys(typed).forEach(function (id) {
      var f = document.getElementById(id);
      if (!f) return;
      typed[id].forEach(function (pair) {
        var e = pair[0] && pair[0] !== "csrf" ? f.elements.namedItem(pair[0]) : null;
        if (!e || e.type === "hidden") return;
        if (e.type === "checkbox") e.checked = pair[1]; else e.value = pair[1];
      });
    });
  }

  function refresh() {
    if (busy) return;
    busy = true;
    fetch(live.dataset.src + query(), { headers: { "X-Lakefn-Fragment": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString("<body>" + html + "</body>", "text/html");
        var part = doc.querySelector("template[data-part=invocations]");
        if (part) { part.remove(); swap(list, part.content); }
        if (!editing(live)) swap(live, doc.body);
        live.classList.remove("stale");
      })
      .catch(function () { live.classList.add("stale"); })
      .then(function () { busy = false; });
  }

  function schedule() {
    clearInterval(timer);
    timer = setInterval(function () { if (!document.hidden) refresh(); }, every);
  }

  if (filters) {
    filters.addEventListener("change", function () {
      history.replaceState(null, "", location.pathname + query());
      refresh();
    });
    filters.addEventListener("submit", function (e) { e.preventDefault(); refresh(); });
  }

  // On the document: a table's rewind form is swapped in anew with every refresh.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.matches || !form.matches("form.action")) return;
    e.preventDefault();
    var button = form.querySelector("button");
    button.disabled = true;
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { "X-Lakefn-Fragment": "1" },
      credentials: "same-origin"
    })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var card = doc.querySelector("#forbidden");
        result.innerHTML = card ? card.innerHTML : doc.body.innerHTML;
        result.hidden = false;
        result.dataset.action = form.dataset.action;
        if (live.contains(form)) result.scrollIntoView({ block: "nearest" });
        refresh();
      })
      .catch(function (err) { result.textContent = "The server did not answer: " + err; result.hidden = false; })
      .then(function () { button.disabled = false; });
  });

  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
  schedule();
})();
