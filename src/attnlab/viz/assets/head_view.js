// attnlab head view: an offline, dependency-free viewer for captured attention patterns.
//
// Each .attnlab-head-view root holds a JSON block (script.hv-data) with the tokens and the
// weights of every layer and head, quantised to uint16 and base64-encoded to keep files small.
// The script builds the controls and draws the chosen head as a matrix on a canvas (one pixel
// per cell, scaled up), so long sequences stay fast. Tokens are written with textContent only:
// they are data, never markup. The root's data-layer / data-head / data-checksum attributes
// say what is on screen, so a test can check that a click really changed the pattern.
(function () {
  "use strict";

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Base64 of little-endian uint16 → Uint16Array (byte order fixed here, not the machine's).
  function decode(base64) {
    var bytes = atob(base64);
    var values = new Uint16Array(bytes.length >> 1);
    for (var i = 0; i < values.length; i++) {
      values[i] = bytes.charCodeAt(2 * i) | (bytes.charCodeAt(2 * i + 1) << 8);
    }
    return values;
  }

  // FNV-1a (32 bit) over the shown uint16 values; attnlab.viz.pattern_checksum computes the same.
  function checksum(values, start, count) {
    var hash = 0x811c9dc5;
    for (var i = 0; i < count; i++) hash = Math.imul(hash ^ values[start + i], 0x01000193) >>> 0;
    return ("0000000" + hash.toString(16)).slice(-8);
  }

  // Whitespace and control characters made visible; everything else shown exactly as given.
  function shown(token) {
    var text = token.replace(/\n/g, "↵").replace(/\t/g, "⇥").replace(/\r/g, "");
    if (text.trim() === "") text = text.replace(/ /g, "␣") || "∅";
    return text;
  }

  // matplotlib's "Blues" at nine even stops, so the page reads like the PNG figures.
  var BLUES = [
    [247, 251, 255], [222, 235, 247], [198, 219, 239], [157, 202, 225], [106, 174, 214],
    [65, 145, 198], [32, 112, 180], [8, 80, 155], [8, 48, 107],
  ];
  function colour(weight) {
    var at = Math.min(Math.max(weight, 0), 1) * (BLUES.length - 1);
    var low = Math.min(Math.floor(at), BLUES.length - 2);
    var t = at - low;
    return BLUES[low].map(function (value, channel) {
      return Math.round(value + t * (BLUES[low + 1][channel] - value));
    });
  }

  function init(root) {
    root.setAttribute("data-ready", "building");
    var data = JSON.parse(root.querySelector("script.hv-data").textContent);
    var values = decode(data.weights);
    var seq = data.seq;
    var block = seq * seq;
    var state = { layer: 0, head: 0 };
    var cell = Math.max(6, Math.min(22, Math.floor(560 / seq)));
    var side = seq * cell;

    function weight(i, j) {
      return values[(state.layer * data.heads + state.head) * block + i * seq + j] / data.scale;
    }
    function blank(i, j) {
      return data.causal && j > i;
    }

    // Controls: one button per layer and per head, found by tests via data-layer / data-head.
    var controls = make("div", "hv-controls");
    function buttonRow(label, count, attribute) {
      var row = make("div", "hv-row");
      row.appendChild(make("span", "hv-label", label));
      var group = make("div", "hv-buttons");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", label);
      for (var i = 0; i < count; i++) {
        var button = make("button", "hv-button", String(i));
        button.type = "button";
        button.setAttribute(attribute, String(i));
        group.appendChild(button);
      }
      row.appendChild(group);
      controls.appendChild(row);
      return group;
    }
    var layerButtons = buttonRow("Layer", data.layers, "data-layer");
    var headButtons = buttonRow("Head", data.heads, "data-head");
    var status = make("div", "hv-status");
    status.setAttribute("aria-live", "polite");

    // The matrix: key tokens along the top, query tokens down the side, canvas in between.
    var scroll = make("div", "hv-scroll");
    var grid = make("div", "hv-grid");
    var keys = make("div", "hv-keys");
    var queries = make("div", "hv-queries");
    var wrap = make("div", "hv-matrix-wrap");
    var canvas = make("canvas", "hv-matrix");
    var overlay = make("canvas", "hv-overlay");
    var fontSize = Math.max(5, Math.min(12, cell - 3)) + "px";
    var keyNodes = [];
    var queryNodes = [];
    data.tokens.forEach(function (token, index) {
      var key = make("span", "hv-token hv-key", shown(token));
      var query = make("span", "hv-token hv-query", shown(token));
      [key, query].forEach(function (node) {
        node.title = "#" + index + " " + token;
        node.setAttribute("data-index", String(index));
        node.style.fontSize = fontSize;
      });
      key.style.width = cell + "px";
      query.style.height = query.style.lineHeight = cell + "px";
      keys.appendChild(key);
      queries.appendChild(query);
      keyNodes.push(key);
      queryNodes.push(query);
    });
    var ratio = side * (window.devicePixelRatio || 1) <= 4096 ? window.devicePixelRatio || 1 : 1;
    [canvas, overlay].forEach(function (node) {
      node.width = node.height = Math.round(side * ratio);
      node.style.width = node.style.height = side + "px";
    });
    wrap.style.width = wrap.style.height = side + "px";
    wrap.appendChild(canvas);
    wrap.appendChild(overlay);
    grid.appendChild(make("div", "hv-corner"));
    grid.appendChild(keys);
    grid.appendChild(queries);
    grid.appendChild(wrap);
    scroll.appendChild(grid);
    var info = make("div", "hv-info", "Hover a token or a cell to see where it attends.");
    [controls, status, scroll, info].forEach(function (node) {
      root.appendChild(node);
    });

    function draw() {
      // One pixel per cell in an offscreen image, then scaled up without smoothing.
      var image = new ImageData(seq, seq);
      for (var i = 0; i < seq; i++) {
        for (var j = 0; j < seq; j++) {
          if (blank(i, j)) continue; // left transparent: the hatched background shows through
          var pixel = 4 * (i * seq + j);
          var rgb = colour(weight(i, j));
          image.data[pixel] = rgb[0];
          image.data[pixel + 1] = rgb[1];
          image.data[pixel + 2] = rgb[2];
          image.data[pixel + 3] = 255;
        }
      }
      var small = make("canvas");
      small.width = small.height = seq;
      small.getContext("2d").putImageData(image, 0, 0);
      var context = canvas.getContext("2d");
      context.imageSmoothingEnabled = false;
      context.clearRect(0, 0, canvas.width, canvas.height);
      context.drawImage(small, 0, 0, canvas.width, canvas.height);
      if (cell >= 12) {
        context.strokeStyle = "rgba(255,255,255,0.7)";
        context.lineWidth = ratio;
        for (var k = 1; k < seq; k++) {
          var line = k * cell * ratio;
          context.beginPath();
          context.moveTo(line, 0);
          context.lineTo(line, canvas.height);
          context.moveTo(0, line);
          context.lineTo(canvas.width, line);
          context.stroke();
        }
      }
    }

    function clearHighlight() {
      keyNodes.concat(queryNodes).forEach(function (node) {
        node.classList.remove("hv-active", "hv-attended");
        node.style.backgroundColor = "";
      });
      overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
    }

    // Tint the other axis's tokens by weight; mark the strongest (≥ half the largest) as attended.
    function tint(nodes, weightAt) {
      var most = 0;
      nodes.forEach(function (_, k) {
        most = Math.max(most, weightAt(k));
      });
      nodes.forEach(function (node, k) {
        var w = weightAt(k);
        if (w <= 0) return;
        node.style.backgroundColor = "rgba(31, 95, 174, " + (0.55 * w) / (most || 1) + ")";
        if (w >= 0.5 * most) node.classList.add("hv-attended");
      });
    }

    function outline(x, y, width, height) {
      var context = overlay.getContext("2d");
      context.strokeStyle = "#e8a200";
      context.lineWidth = 2 * ratio;
      context.strokeRect(x * ratio, y * ratio, width * ratio, height * ratio);
    }

    function highlight(query, key) {
      clearHighlight();
      var text;
      if (query !== null && key !== null) {
        queryNodes[query].classList.add("hv-active");
        keyNodes[key].classList.add("hv-active");
        outline(key * cell, query * cell, cell, cell);
        text = blank(query, key)
          ? "masked: a causal model's query cannot see later keys"
          : weight(query, key).toFixed(4);
        info.textContent = "query " + query + " “" + data.tokens[query] + "” → key " + key +
          " “" + data.tokens[key] + "”: " + text;
      } else if (query !== null) {
        queryNodes[query].classList.add("hv-active");
        tint(keyNodes, function (k) {
          return blank(query, k) ? 0 : weight(query, k);
        });
        outline(0, query * cell, side, cell);
        var order = keyNodes.map(function (_, k) {
          return k;
        });
        order.sort(function (a, b) {
          return weight(query, b) - weight(query, a);
        });
        text = order.slice(0, 3).map(function (k) {
          return "“" + data.tokens[k] + "” " + weight(query, k).toFixed(3);
        });
        info.textContent = "query " + query + " “" + data.tokens[query] + "” attends most to " +
          text.join(", ");
      } else if (key !== null) {
        keyNodes[key].classList.add("hv-active");
        tint(queryNodes, function (q) {
          return blank(q, key) ? 0 : weight(q, key);
        });
        outline(key * cell, 0, cell, side);
        info.textContent = "key " + key + " “" + data.tokens[key] + "”: column shows who attends to it";
      }
    }

    function select(layer, head) {
      state.layer = layer;
      state.head = head;
      [[layerButtons, "data-layer", layer], [headButtons, "data-head", head]].forEach(function (g) {
        g[0].querySelectorAll("button").forEach(function (button) {
          button.setAttribute("aria-pressed", String(button.getAttribute(g[1]) === String(g[2])));
        });
      });
      var sum = checksum(values, (layer * data.heads + head) * block, block);
      root.setAttribute("data-layer", String(layer));
      root.setAttribute("data-head", String(head));
      root.setAttribute("data-checksum", sum);
      status.textContent = "layer " + layer + " · head " + head + (data.causal ? " · causal" : "") +
        " · pattern checksum " + sum;
      draw();
      clearHighlight();
    }

    layerButtons.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-layer]");
      if (button) select(Number(button.getAttribute("data-layer")), state.head);
    });
    headButtons.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-head]");
      if (button) select(state.layer, Number(button.getAttribute("data-head")));
    });
    queries.addEventListener("mouseover", function (event) {
      var node = event.target.closest(".hv-query");
      if (node) highlight(Number(node.getAttribute("data-index")), null);
    });
    keys.addEventListener("mouseover", function (event) {
      var node = event.target.closest(".hv-key");
      if (node) highlight(null, Number(node.getAttribute("data-index")));
    });
    canvas.addEventListener("mousemove", function (event) {
      var box = canvas.getBoundingClientRect();
      var key = Math.floor((event.clientX - box.left) / cell);
      var query = Math.floor((event.clientY - box.top) / cell);
      if (query >= 0 && query < seq && key >= 0 && key < seq) highlight(query, key);
    });
    grid.addEventListener("mouseleave", clearHighlight);

    select(0, 0);
    root.setAttribute("data-ready", "true");
  }

  document.querySelectorAll(".attnlab-head-view:not([data-ready])").forEach(function (root) {
    try {
      init(root);
    } catch (error) {
      root.setAttribute("data-ready", "error");
      root.appendChild(make("p", "hv-error", "The head view could not be drawn: " + error));
      throw error;
    }
  });
})();
