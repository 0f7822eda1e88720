// Draw the area of an announcement: each click adds a corner; the polygon is written as
// GeoJSON into the form's `polygon` field (which staff may also edit or paste into).
(function () {
  "use strict";
  var el = document.getElementById("announcement-map");
  if (!el || typeof L === "undefined") return;
  var field = document.getElementById("an-polygon");
  var map = L.map(el).setView([47.61, -122.33], 11);
  if (el.dataset.tiles) {
    L.tileLayer(el.dataset.tiles, {maxZoom: 18, attribution: el.dataset.attribution}).addTo(map);
  }
  fetch(el.dataset.geojson).then(function (r) { return r.json(); }).then(function (doc) {
    var layer = L.geoJSON(doc, {style: {weight: 1, fillOpacity: 0.05}}).addTo(map);
    map.fitBounds(layer.getBounds());
  });
  var corners = [];
  var shape = null;

  function write() {
    if (shape) { map.removeLayer(shape); shape = null; }
    if (corners.length === 0) { field.value = ""; return; }
    shape = (corners.length < 3 ? L.polyline(corners) : L.polygon(corners)).addTo(map);
    if (corners.length >= 3) {
      var ring = corners.map(function (c) { return [c.lng, c.lat]; });
      ring.push(ring[0]);
      field.value = JSON.stringify({type: "Polygon", coordinates: [ring]});
    }
  }

  map.on("click", function (e) { corners.push(e.latlng); write(); });
  document.getElementById("an-clear").addEventListener("click", function () {
    corners = []; write();
  });
})();
