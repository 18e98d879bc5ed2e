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

  function swap(target, fresh) {
    var open = {};
    target.querySelectorAll("details[open]").forEach(function (d) { open[d.id] = true; });
    var known = {};
    target.querySelectorAll("details.inv").forEach(function (d) { known[d.id] = true; });
    target.replaceChildren.apply(target, Array.prototype.slice.call(fresh.childNodes));
    target.querySelectorAll("details.inv").forEach(function (d) {
      if (open[d.id]) d.open = true;
      if (!known[d.id] && Object.keys(known).length) d.classList.add("new");
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
        swap(live, doc.body);
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

  document.querySelectorAll("form.action").forEach(function (form) {
    form.addEventListener("submit", function (e) {
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
          refresh();
        })
        .catch(function (err) { result.textContent = "The server did not answer: " + err; result.hidden = false; })
        .then(function () { button.disabled = false; });
    });
  });

  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
  schedule();
})();
