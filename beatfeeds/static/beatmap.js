/* beatfeeds: the beat maps of the home and area pages, and finding a beat in the browser.
 *
 * Everything here is an enhancement: without JavaScript the pages list every beat with its
 * feeds, and the beat-code search is a plain form. A resident's position (from "use my
 * location" or the address search) is matched against the beats GeoJSON here, in the browser:
 * it is never sent to beatfeeds.
 */
(function () {
  "use strict";

  // Distinct, colour-blind-friendly fills (Okabe-Ito); labels carry the beat code as well, so
  // colour is never the only cue.
  var PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
                 "#F0E442"];

  // ---- geometry: point in polygon (ray casting), GeoJSON order [lon, lat] -----------------
  function inRing(lon, lat, ring) {
    var inside = false;
    for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      var xi = ring[i][0], yi = ring[i][1], xj = ring[j][0], yj = ring[j][1];
      if ((yi > lat) !== (yj > lat) && lon < ((xj - xi) * (lat - yi)) / (yj - yi) + xi) {
        inside = !inside;
      }
    }
    return inside;
  }

  function inPolygon(lon, lat, rings) {
    if (!inRing(lon, lat, rings[0])) return false;
    for (var k = 1; k < rings.length; k++) {
      if (inRing(lon, lat, rings[k])) return false; // a hole
    }
    return true;
  }

  function featureContains(feature, lon, lat) {
    var g = feature.geometry;
    if (!g) return false;
    if (g.type === "Polygon") return inPolygon(lon, lat, g.coordinates);
    if (g.type === "MultiPolygon") {
      return g.coordinates.some(function (p) { return inPolygon(lon, lat, p); });
    }
    return false;
  }

  function findBeat(geojson, lat, lon) {
    var found = null;
    geojson.features.some(function (f) {
      if (featureContains(f, lon, lat)) { found = f; return true; }
      return false;
    });
    return found;
  }

  // Exposed for the pages' own scripts and for tests.
  window.beatfeeds = { findBeat: findBeat, featureContains: featureContains };

  // ---- page wiring --------------------------------------------------------------------------
  function status(text) {
    var el = document.getElementById("map-status");
    if (el) el.textContent = text;
  }

  function goToBeat(feature, how) {
    if (!feature) {
      status(how + " is outside every beat of this map. Pick a beat from the lists below.");
      return;
    }
    status("Opening beat " + feature.properties.beat + "…");
    window.location.href = feature.properties.url;
  }

  function precinctColours(geojson) {
    var codes = [];
    geojson.features.forEach(function (f) {
      var p = f.properties.precinct || "";
      if (codes.indexOf(p) < 0) codes.push(p);
    });
    codes.sort();
    var colours = {};
    codes.forEach(function (p, i) { colours[p] = PALETTE[i % PALETTE.length]; });
    return colours;
  }

  function drawLegend(el, geojson, colours) {
    var legend = document.getElementById(el.dataset.legend || "");
    if (!legend) return;
    var labels = {};
    geojson.features.forEach(function (f) {
      labels[f.properties.precinct || ""] = f.properties.precinct_label || "No precinct";
    });
    Object.keys(colours).sort().forEach(function (p) {
      var li = document.createElement("li");
      var swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colours[p];
      swatch.setAttribute("aria-hidden", "true");
      li.appendChild(swatch);
      li.appendChild(document.createTextNode(labels[p]));
      legend.appendChild(li);
    });
    legend.hidden = false;
  }

  function initMap(el) {
    if (!window.L) return;
    var highlight = (el.dataset.highlight || "").split(",").filter(Boolean);
    var neighbours = (el.dataset.neighbours || "").split(",").filter(Boolean);
    var focused = highlight.length > 0;
    var map = L.map(el, { scrollWheelZoom: !focused, zoomSnap: 0.25 });
    el.leafletMap = map;
    // Beat codes would overlap with the whole city in view: smaller until zoomed in.
    map.on("zoomend", function () {
      el.classList.toggle("labels-small", !focused && map.getZoom() < 12);
    });
    if (el.dataset.tiles) {
      L.tileLayer(el.dataset.tiles, { attribution: el.dataset.attribution || "",
                                      maxZoom: 18 }).addTo(map);
    }
    fetch(el.dataset.geojson, { headers: { Accept: "application/geo+json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (geojson) {
        el.beatsGeojson = geojson;
        var colours = precinctColours(geojson);
        var shown = focused ? {
          type: "FeatureCollection",
          features: geojson.features.filter(function (f) {
            return highlight.indexOf(f.properties.beat) >= 0 ||
                   neighbours.indexOf(f.properties.beat) >= 0;
          })
        } : geojson;
        var layer = L.geoJSON(shown, {
          style: function (f) {
            var mine = highlight.indexOf(f.properties.beat) >= 0;
            var colour = focused ? (mine ? el.dataset.accent || "#0b4f8a" : "#4a5561")
                                 : colours[f.properties.precinct || ""];
            return { color: colour, weight: mine ? 3 : 1.5, fillColor: colour,
                     fillOpacity: focused ? (mine ? 0.25 : 0.06) : 0.18 };
          },
          onEachFeature: function (f, lyr) {
            lyr.bindTooltip(f.properties.beat, { permanent: true, direction: "center",
                                                 className: "beat-label" });
          }
        }).addTo(map);
        var bounds = focused ? L.geoJSON({
          type: "FeatureCollection",
          features: shown.features.filter(function (f) {
            return highlight.indexOf(f.properties.beat) >= 0;
          })
        }).getBounds().pad(0.6) : layer.getBounds();
        map.fitBounds(bounds);
        if (!focused) drawLegend(el, geojson, colours);
        el.setAttribute("data-ready", "true");
      })
      .catch(function (err) {
        status("The map could not be loaded (" + err.message + "). Use the lists below.");
      });

    map.on("click", function (e) {
      if (!el.beatsGeojson) return;
      var f = findBeat(el.beatsGeojson, e.latlng.lat, e.latlng.lng);
      if (f && focused && highlight.indexOf(f.properties.beat) >= 0) return; // already here
      goToBeat(f, "That point");
    });
    return el;
  }

  function beatsFor(mapEl, then) {
    if (mapEl && mapEl.beatsGeojson) return then(mapEl.beatsGeojson);
    fetch((mapEl && mapEl.dataset.geojson) || "/beats.geojson")
      .then(function (r) { return r.json(); })
      .then(then)
      .catch(function () { status("The beat map could not be loaded. Use the lists below."); });
  }

  function initLocate(button, mapEl) {
    if (!("geolocation" in navigator)) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      status("Finding your location… (it stays in this browser)");
      navigator.geolocation.getCurrentPosition(function (pos) {
        beatsFor(mapEl, function (geojson) {
          goToBeat(findBeat(geojson, pos.coords.latitude, pos.coords.longitude),
                   "Your location");
        });
      }, function (err) {
        status("Your location is not available (" + err.message + "). Search by beat code " +
               "or pick a beat from the lists below.");
      }, { enableHighAccuracy: false, timeout: 15000, maximumAge: 600000 });
    });
  }

  function initAddress(form, mapEl) {
    var base = form.dataset.geocoder.replace(/\/+$/, "");
    form.hidden = false;
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var q = form.querySelector("input[name=q]").value.trim();
      if (!q) { status("Type an address first."); return; }
      status("Looking up the address…");
      var url = base + "/search?format=jsonv2&limit=1&q=" + encodeURIComponent(q);
      fetch(url, { headers: { Accept: "application/json" } })
        .then(function (r) {
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
        .then(function (results) {
          if (!results.length) { status("No place found for that address."); return; }
          var lat = parseFloat(results[0].lat), lon = parseFloat(results[0].lon);
          beatsFor(mapEl, function (geojson) { goToBeat(findBeat(geojson, lat, lon), "That address"); });
        })
        .catch(function (err) {
          status("The address search is not available (" + err.message + ").");
        });
    });
  }

  function initCopy(button) {
    var input = document.getElementById(button.dataset.copy);
    if (!input || !navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(input.value).then(function () {
        var note = document.getElementById(button.dataset.copy + "-status");
        if (note) note.textContent = "Copied. Paste it into your feed reader.";
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var mapEl = null;
    document.querySelectorAll("[data-beat-map]").forEach(function (el) {
      mapEl = initMap(el) || mapEl;
    });
    var locate = document.getElementById("use-location");
    if (locate) initLocate(locate, mapEl);
    var address = document.getElementById("address-search");
    if (address && address.dataset.geocoder) initAddress(address, mapEl);
    document.querySelectorAll("button[data-copy]").forEach(initCopy);
  });
})();
