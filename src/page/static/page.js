// Live refresh, the page's only script: while the run is not done, fetch the #live
// fragment every 2 s and swap it in (no reload; outputs opened stay open; not while a
// reason is being typed). Without JavaScript the page is complete, only static, and
// its approve/reject forms are plain POSTs.
(function () {
  var live = document.getElementById("live");
  if (!live || live.dataset.done === "true") return;
  // Someone typing a reason to reject keeps the fragment they type in.
  function typing() {
    return Array.prototype.some.call(live.querySelectorAll("input[name=reason]"), function (i) {
      return i.value !== "" || i === document.activeElement;
    });
  }
  var timer = setInterval(function () {
    if (typing()) return;
    fetch(live.dataset.src, { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        var t = document.createElement("template");
        t.innerHTML = html;
        var next = t.content.getElementById("live");
        if (!next) return;
        live.querySelectorAll("details[open]").forEach(function (d) {
          var same = d.id && next.querySelector("#" + CSS.escape(d.id));
          if (same) same.open = true;
        });
        live.replaceWith(next);
        live = next;
        if (live.dataset.done === "true") clearInterval(timer);
      })
      .catch(function () {
        // Signed out or the server is gone: stop; a reload shows why.
        clearInterval(timer);
      });
  }, 2000);
})();
