// skfindkit search page: plain JavaScript, no dependencies, served by the package.
"use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var config = null;
  var droppedFile = null;

  // absolute URLs: a page opened as http://user:token@host/ has a base URL that
  // holds the credentials, and fetch refuses relative URLs resolved against it
  function api(path) { return location.origin + path; }

  function setStatus(text, isError) {
    var status = $("status");
    status.textContent = text;
    status.className = isError ? "error" : "";
    status.setAttribute("role", isError ? "alert" : "status");
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") node.textContent = attrs[name];
      else node.setAttribute(name, attrs[name]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function configure(health) {
    config = health;
    var what = health.query === "vector" ? "feature vectors of length " + health.n_features
      : health.kind === "file" ? "files" : health.kind + (health.query === "text" ? "s" : " files");
    $("about").textContent = health.items + " indexed items; search with " + what + ".";
    $("file-field").hidden = health.query === "vector";
    $("text-field").hidden = health.query !== "text";
    $("vector-field").hidden = health.query !== "vector";
    if (health.extensions.length) $("query-file").setAttribute("accept", health.extensions.join(","));
    $("k").max = health.k_max;
    $("k").value = Math.min(health.k_default, health.k_max);
    var columns = Object.keys(health.metadata || {});
    $("where-field").hidden = !columns.length;
    if (columns.length) {
      $("where-help").textContent = "A condition on the columns " + columns.map(function (name) {
        return name + " (" + health.metadata[name] + ")";
      }).join(", ") + ", e.g. " + example(columns[0], health.metadata[columns[0]]) +
        "; and, or, not, in [...]. Empty: every item.";
    }
  }

  function example(name, kind) {
    var column = /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? name : "`" + name + "`";
    return column + (kind === "text" ? " == 'value'" : kind === "boolean" ? " == true" : " >= 10");
  }

  // the metadata columns of a hit as a definition list (text only: never parsed as HTML)
  function metadataList(metadata) {
    var names = Object.keys(metadata || {});
    if (!names.length) return null;
    var list = el("dl", {"class": "metadata"});
    names.forEach(function (name) {
      var value = metadata[name];
      list.appendChild(el("dt", {text: name}));
      list.appendChild(el("dd", {text: value === null ? "none" : String(value)}));
    });
    return list;
  }

  function chosenFile() {
    var input = $("query-file");
    return droppedFile || (input.files && input.files[0]) || null;
  }

  function showPreview(file) {
    var preview = $("query-preview");
    preview.textContent = "";
    if (!file) return;
    var url = URL.createObjectURL(file);
    if (config.kind === "image") {
      var image = el("img", {src: url, alt: "query: " + file.name});
      image.addEventListener("error", function () {  // a format the browser cannot show, or not an image
        preview.textContent = "";
        preview.appendChild(el("p", {"class": "nopreview", text: "query: " + file.name + " (no preview in this browser)"}));
      });
      preview.appendChild(image);
    }
    else if (config.kind === "audio") preview.appendChild(el("audio", {src: url, controls: "", "aria-label": "query: " + file.name}));
    else preview.appendChild(el("p", {text: "query: " + file.name}));
  }

  function request() {
    var text = $("query-text").value;
    if (config.query === "vector") {
      var numbers = $("query-vector").value.split(/[\s,]+/).filter(Boolean).map(Number);
      return {body: JSON.stringify({vector: numbers}), headers: {"Content-Type": "application/json"}};
    }
    if (config.query === "text" && text.trim()) {
      return {body: JSON.stringify({text: text}), headers: {"Content-Type": "application/json"}};
    }
    var file = chosenFile();
    if (!file) return null;
    var form = new FormData();
    form.append("file", file, file.name);
    return {body: form, headers: {}};
  }

  // a key as two lines that break only between words: its folder, then its name
  function caption(key) {
    var text = String(key);
    var cut = text.replace(/\\/g, "/").lastIndexOf("/");
    var folder = cut > 0 ? text.slice(0, cut + 1) : "";
    var name = cut >= 0 ? text.slice(cut + 1) : text;
    return el("span", {"class": "key", title: text}, [
      folder ? el("span", {"class": "folder", text: folder}) : null,
      el("span", {"class": "name", text: name})
    ]);
  }

  function media(hit) {
    var label = "result " + hit.rank + ": " + hit.key + ", distance " + hit.distance.toPrecision(4);
    if (!hit.url) return el("div", {"class": "nofile", text: "no file for this key"});
    if (config.kind === "image") {
      var image = el("img", {src: hit.url, alt: label, loading: "lazy"});
      image.addEventListener("error", function () {  // the file changed or cannot be read
        image.replaceWith(el("div", {"class": "nofile", text: "cannot show this file"}));
      });
      return image;
    }
    if (config.kind === "audio") return el("audio", {src: hit.url, controls: "", preload: "none", "aria-label": label});
    if (config.kind === "text") {
      var snippet = el("p", {"class": "snippet", text: "…"});
      fetch(api(hit.url)).then(function (r) { return r.text(); }).then(function (t) {
        snippet.textContent = t.length > 300 ? t.slice(0, 300) + "…" : t;
      });
      return snippet;
    }
    return null;
  }

  function render(data) {
    var list = $("results");
    list.textContent = "";
    list.className = "results" + (config.kind === "text" ? " texts" : "");
    data.results.forEach(function (hit) {
      var meta = el("div", {"class": "meta"}, [
        el("span", {"class": "rank", text: "#" + hit.rank + " "}),
        caption(hit.key),
        el("span", {"class": "distance", text: "distance " + hit.distance.toPrecision(4)}),
        metadataList(hit.metadata)
      ]);
      var link = el("a", {href: hit.url || "#", "class": "hit-link", "data-id": hit.id}, [
        config.kind === "audio" ? null : media(hit), meta]);
      link.addEventListener("click", function (event) { event.preventDefault(); select(hit, item); });
      var item = el("li", {"class": "hit", "data-id": hit.id}, [link, config.kind === "audio" ? media(hit) : null]);
      list.appendChild(item);
    });
    setStatus(data.results.length + " results in " + data.took_ms.toFixed(1) + " ms.", false);
  }

  function select(hit, item) {
    Array.prototype.forEach.call(document.querySelectorAll(".hit.selected"), function (n) {
      n.classList.remove("selected");
    });
    item.classList.add("selected");
    var body = $("detail-body");
    body.textContent = "";
    body.appendChild(el("p", {id: "detail-key", text: "#" + hit.rank + " " + hit.key +
      " (id " + hit.id + "), distance " + hit.distance.toPrecision(6)}));
    var metadata = metadataList(hit.metadata);
    if (metadata) body.appendChild(metadata);
    if (hit.url) {
      if (config.kind === "text") {
        var pre = el("pre", {text: "…"});
        fetch(api(hit.url)).then(function (r) { return r.text(); }).then(function (t) { pre.textContent = t; });
        body.appendChild(pre);
      } else if (config.kind === "image") {
        body.appendChild(el("img", {src: hit.url, alt: String(hit.key)}));
      } else if (config.kind === "audio") {
        body.appendChild(el("audio", {src: hit.url, controls: "", "aria-label": String(hit.key)}));
      }
      body.appendChild(el("p", {}, [el("a", {href: hit.url, text: "open the item"})]));
    }
    $("detail").hidden = false;
    $("detail").focus();
  }

  function search(event) {
    event.preventDefault();
    var req = request();
    if (!req) { setStatus("Choose or drop a query file first.", true); return; }
    var button = $("search-button");
    button.disabled = true;
    setStatus("Searching…", false);
    var where = $("where-field").hidden ? "" : $("where").value.trim();
    var url = "/search?k=" + encodeURIComponent($("k").value) +
      (where ? "&where=" + encodeURIComponent(where) : "");
    fetch(api(url), {method: "POST", body: req.body, headers: req.headers})
      .then(function (response) {
        return response.json().then(function (data) {
          if (!response.ok) throw new Error(data.detail || response.statusText);
          return data;
        });
      })
      .then(render)
      .catch(function (error) { setStatus("Error: " + error.message, true); })
      .then(function () { button.disabled = false; });
  }

  function setupDrop() {
    var zone = $("drop-zone");
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) {
      if (e.dataTransfer.files.length) {
        droppedFile = e.dataTransfer.files[0];
        showPreview(droppedFile);
        $("search-form").requestSubmit();
      }
    });
    $("query-file").addEventListener("change", function () {
      droppedFile = null;
      showPreview(chosenFile());
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupDrop();
    $("search-form").addEventListener("submit", search);
    fetch(api("/info")).then(function (r) { return r.json(); }).then(configure)
      .catch(function () { setStatus("The server did not answer /info.", true); });
  });
})();
