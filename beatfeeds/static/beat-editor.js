/* Beat-map viewer and editor on Leaflet core (no plugins). Geometry work happens on the server:
   this script only collects what the admin drew and sends it as JSON. */
(function () {
  "use strict";
  var el = document.getElementById("beat-map");
  if (!el || typeof L === "undefined") { return; }

  var COLORS = { unchanged: "#0b4f8a", added: "#1a7f37", reshaped: "#bf5700", renamed: "#8250df",
                 removed: "#6e7781", selected: "#b3261e" };
  var readonly = el.dataset.readonly === "1";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content;
  var map = L.map(el, { zoomSnap: 0.25 });
  if (el.dataset.tileUrl) {
    L.tileLayer(el.dataset.tileUrl, { maxZoom: 19, attribution: el.dataset.tileAttribution || "" }).addTo(map);
  }
  map.setView([47.61, -122.33], 11);  // replaced by the map's own bounds once loaded
  // Tests and scripts wait for data-moving="0" before touching markers.
  el.dataset.moving = "0";
  map.on("movestart zoomstart", function () { el.dataset.moving = "1"; });
  map.on("moveend zoomend", function () { el.dataset.moving = "0"; });

  var beatsLayer = null, removedLayer = null, problemsLayer = L.layerGroup().addTo(map);
  var toolLayer = L.layerGroup().addTo(map);
  var layersByCode = {}, selected = null, tool = null, points = [], mergeWith = null, data = null;
  var $ = function (id) { return document.getElementById(id); };

  function style(feature) {
    var change = feature.properties.change;
    return { color: COLORS[change] || COLORS.unchanged, weight: change === "unchanged" ? 1.5 : 3,
             fillOpacity: change === "unchanged" ? 0.06 : 0.18,
             dashArray: change === "removed" ? "6 4" : null };
  }

  function render(d, fit) {
    data = d;
    if (beatsLayer) { map.removeLayer(beatsLayer); }
    if (removedLayer) { map.removeLayer(removedLayer); }
    problemsLayer.clearLayers();
    layersByCode = {};
    removedLayer = L.geoJSON(d.removed, { style: style, interactive: false }).addTo(map);
    beatsLayer = L.geoJSON(d.beats, {
      style: style,
      onEachFeature: function (f, layer) {
        layersByCode[f.properties.code] = layer;
        layer.bindTooltip(f.properties.code, { sticky: true });
        if (!readonly) { layer.on("click", function (e) { onBeatClick(f.properties.code, e); }); }
      }
    }).addTo(map);
    d.problems.forEach(function (p) {
      if (p.lat === null) { return; }
      L.circleMarker([p.lat, p.lon], { radius: 8, color: "#cf222e", weight: 3, fillOpacity: 0.3 })
        .bindTooltip(p.severity + ": " + p.message).addTo(problemsLayer);
    });
    renderProblems(d.problems);
    fillSelect();
    if (fit && beatsLayer.getLayers().length) { map.fitBounds(beatsLayer.getBounds()); }
  }

  function renderProblems(problems) {
    var box = $("problems");
    if (!box || readonly) { return; }
    box.textContent = "";
    if (!problems.length) {
      var ok = document.createElement("p");
      ok.textContent = "No problems: every beat is a valid polygon, no codes repeat, no overlaps, gaps or slivers.";
      box.appendChild(ok);
      return;
    }
    var ul = document.createElement("ul");
    ul.className = "problems";
    problems.forEach(function (p) {
      var li = document.createElement("li");
      li.className = p.severity;
      li.textContent = p.severity + ": " + p.message;
      if (p.lat !== null) {
        li.tabIndex = 0;
        li.title = "Show on the map";
        li.addEventListener("click", function () { map.setView([p.lat, p.lon], 16); });
      }
      ul.appendChild(li);
    });
    box.appendChild(ul);
  }

  function fillSelect() {
    var tools = $("beat-tools");
    if (!tools || readonly) { return; }
    var sel = $("beat-select");
    if (!sel) {
      var label = document.createElement("label");
      label.htmlFor = "beat-select";
      label.textContent = "Beat";
      sel = document.createElement("select");
      sel.id = "beat-select";
      sel.addEventListener("change", function () { if (sel.value) { select(sel.value, true); } });
      $("selection").after(label, sel);
    }
    sel.textContent = "";
    var none = document.createElement("option");
    none.value = ""; none.textContent = "(choose a beat)";
    sel.appendChild(none);
    Object.keys(layersByCode).sort().forEach(function (code) {
      var o = document.createElement("option");
      o.value = code; o.textContent = code;
      sel.appendChild(o);
    });
    if (selected && layersByCode[selected]) { sel.value = selected; }
  }

  function onBeatClick(code, e) {
    if (tool === "merge" && selected && code !== selected) {
      mergeWith = code;
      help("Merge " + code + " into " + selected + ": press Save.");
      return;
    }
    if (tool === "redraw" || tool === "split") { return; }  // the map's own click adds the point
    select(code, false);
  }

  function select(code, zoom) {
    cancelTool();
    selected = code;
    Object.keys(layersByCode).forEach(function (c) {
      layersByCode[c].setStyle(style(layersByCode[c].feature));
    });
    var layer = layersByCode[code];
    layer.setStyle({ color: COLORS.selected, weight: 4 });
    layer.bringToFront();
    if (zoom) { map.fitBounds(layer.getBounds()); }
    var p = layer.feature.properties;
    $("selection").textContent = "Beat " + code + (p.sector ? ", sector " + p.sector : "") +
      (p.precinct ? ", precinct " + p.precinct : "");
    $("beat-tools").hidden = false;
    $("rename-code").value = code;
    $("rename-sector").value = p.sector || "";
    $("rename-precinct").value = p.precinct || "";
    if ($("beat-select")) { $("beat-select").value = code; }
  }

  function help(text) { $("tool-help").textContent = text; }

  function setTool(name) {
    cancelTool();
    if (!selected) { return; }
    tool = name;
    document.querySelectorAll("[data-tool]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.tool === name));
    });
    $("tool-actions").hidden = false;
    $("split-code").hidden = $("split-code-label").hidden = name !== "split";
    var layer = layersByCode[selected];
    if (name === "vertices") {
      map.fitBounds(layer.getBounds());
      vertexMarkers(layer);
      help("Drag the round handles, then press Save. Neighbours follow: no gap or overlap opens.");
    } else if (name === "redraw") {
      help("Click the corners of the new shape on the map, then press Save.");
    } else if (name === "split") {
      help("Click points of a line that crosses " + selected + " from edge to edge, give the new beat a code, then press Save.");
    } else if (name === "merge") {
      help("Click the neighbouring beat to merge into " + selected + ".");
    }
  }

  function cancelTool() {
    tool = null; points = []; mergeWith = null;
    toolLayer.clearLayers();
    if (selected && layersByCode[selected] && layersByCode[selected]._edited) {
      render(data, false);  // undo unsaved vertex moves
    }
    if ($("tool-actions")) { $("tool-actions").hidden = true; }
    document.querySelectorAll("[data-tool]").forEach(function (b) { b.setAttribute("aria-pressed", "false"); });
    if ($("tool-help")) { help(""); }
  }

  function vertexMarkers(layer) {
    var icon = L.divIcon({ className: "bf-vertex", iconSize: [12, 12] });
    (function walk(latlngs) {
      if (latlngs.length && latlngs[0] instanceof L.LatLng) {
        latlngs.forEach(function (ll, i) {
          var m = L.marker(ll, { icon: icon, draggable: true, keyboard: false,
                                 title: "vertex " + (i + 1) });
          m.on("drag", function (e) {
            ll.lat = e.latlng.lat; ll.lng = e.latlng.lng;
            layer._edited = true;
            layer.redraw();
          });
          m.addTo(toolLayer);
        });
        return;
      }
      latlngs.forEach(walk);
    })(layer.getLatLngs());
  }

  function addPoint(latlng) {
    points.push(latlng);
    toolLayer.clearLayers();
    var shape = tool === "redraw" && points.length > 2 ? L.polygon(points) : L.polyline(points);
    shape.setStyle({ color: COLORS.selected, dashArray: "4 4" }).addTo(toolLayer);
    points.forEach(function (p) { L.circleMarker(p, { radius: 4, color: COLORS.selected }).addTo(toolLayer); });
  }

  function lnglat(p) { return [p.lng, p.lat]; }

  function save() {
    var op;
    if (tool === "vertices") {
      op = { op: "reshape", code: selected, geometry: layersByCode[selected].toGeoJSON(false).geometry };
    } else if (tool === "redraw") {
      if (points.length < 3) { return showError("Click at least three corners."); }
      var ring = points.map(lnglat);
      ring.push(ring[0]);
      op = { op: "reshape", code: selected, geometry: { type: "Polygon", coordinates: [ring] } };
    } else if (tool === "split") {
      if (points.length < 2) { return showError("Click at least two points of the cut line."); }
      op = { op: "split", code: selected, new_code: $("split-code").value,
             line: { type: "LineString", coordinates: points.map(lnglat) } };
    } else if (tool === "merge") {
      if (!mergeWith) { return showError("Click the beat to merge first."); }
      op = { op: "merge", code: selected, other: mergeWith };
    } else { return; }
    send(op);
  }

  function send(op) {
    showError("");
    help("Saving…");
    fetch(el.dataset.editUrl, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(op)
    }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    }).then(function (res) {
      if (!res.ok) { help(""); return showError(res.body.error || "The edit was refused."); }
      var keep = op.op === "rename" ? (op.new_code || op.code) : op.code;
      if (String(res.body.set_id) !== el.dataset.editUrl.split("/").slice(-2)[0]) {
        window.location = res.body.url;  // the active map was copied into a new draft
        return;
      }
      tool = null;
      render(res.body, false);
      if (layersByCode[keep]) { select(keep, false); } else { cancelTool(); }
      help("Saved. " + res.body.problems.length + " problem(s) in this map.");
    }).catch(function () { help(""); showError("The server could not be reached; nothing was saved."); });
  }

  function showError(text) {
    var e = $("edit-error");
    if (!e) { return; }
    e.textContent = text;
    e.hidden = !text;
  }

  if (!readonly) {
    document.querySelectorAll("[data-tool]").forEach(function (b) {
      b.addEventListener("click", function () { setTool(b.dataset.tool); });
    });
    $("tool-save").addEventListener("click", save);
    $("tool-cancel").addEventListener("click", cancelTool);
    $("rename-form").addEventListener("submit", function (e) {
      e.preventDefault();
      send({ op: "rename", code: selected, new_code: $("rename-code").value,
             sector: $("rename-sector").value, precinct: $("rename-precinct").value });
    });
    map.on("click", function (e) { if (tool === "redraw" || tool === "split") { addPoint(e.latlng); } });
  }

  fetch(el.dataset.mapUrl, { credentials: "same-origin" })
    .then(function (r) { return r.json(); })
    .then(function (d) { render(d, true); el.dataset.ready = "1"; });
})();
